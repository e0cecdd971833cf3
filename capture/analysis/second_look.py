"""The second-look trial's cases read from session files (the statistics are
capture/gazemath/second_look_trial.py)."""

from __future__ import annotations

from pathlib import Path

from radgaze.capture.gazemath.second_look_trial import (
    CaseOutcome,
    abnormal_labels,
    case_key,
    case_outcome,
    with_reference,
)


def reference_truth(paths: list[Path]) -> dict[str, set[str]]:
    """{case key: abnormal labels present} of every case a reference reader annotated (an expert's labels)."""
    from radgaze.capture.store.reader import SessionReader

    out = {}
    for path in paths:
        with SessionReader(path) as reader:
            for case_id in reader.case_ids:
                case = reader.case(case_id)
                if case.annotation is not None and case.annotation.labels:
                    out[case_key(case)] = abnormal_labels(case.annotation)
    return out


def session_outcomes(paths: list[Path], reference: dict | None = None) -> tuple[list[CaseOutcome], int]:
    """Outcomes of every case with a second look in ``paths`` (scored against ``reference`` labels where it
    has the case: reference_truth); and how many cases had none (skipped)."""
    from radgaze.capture.store.reader import SessionReader
    from radgaze.capture.store.second_look import read_second_looks

    out, skipped = [], 0
    for path in paths:
        stored = read_second_looks(path)
        with SessionReader(path) as reader:
            for case_id in reader.case_ids:
                if case_id not in stored:
                    skipped += 1
                    continue
                case = reader.case(case_id)
                outcome = case_outcome(str(path), case, stored[case_id])
                if reference is not None:
                    outcome = with_reference(outcome, case, reference.get(case_key(case)))
                out.append(outcome)
    return out, skipped
