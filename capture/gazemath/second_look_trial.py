"""``radgaze analyze second-look SESSIONS...``: the second-look trial's table, per arm (shown / not shown).

Per case (every case whose session holds a second look, ``docs/session-format.md``): the sentences dictated
after Space (``t_space_lsl``) and how many of them state a finding; where the case has truth (synthetic
findings, each linked to the sentence that names it), whether each finding was reported, before or after
the second look; and false positives: sentences stating a finding that names none of the truth's. Per arm:
sensitivity (reported / true findings) and false positives per image, each with a percentile bootstrap 95 %
confidence interval over cases (Efron & Tibshirani 1993), and the difference between the arms.

With ``--reference`` (an expert's annotated sessions, cases matched by image sha256) the truth is the
reference's abnormal labels and the reader's own labels (given at sign-off, after the second look in both arms)
are scored: sensitivity = reference labels the reader gave / reference labels, false positives = labels the
reader gave that the reference does not (certainty >= "Possibly", capture.annotation.labels.present_labels).

A sentence "states a finding" when it names one (nodule, consolidation, effusion, pneumothorax, ...) and is
not negated ("no", "not", "without"): a rule for the synthetic reports' phrasing, not a radiology NLP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

NORMAL_LABEL = "normal radiograph"
FINDING_WORDS = (
    "nodule",
    "consolidation",
    "effusion",
    "pneumothorax",
    "cardiomegaly",
    "enlarged",
    "opacity",
    "mass",
)
NEGATIONS = ("no", "not", "without")
N_BOOT = 2000


@dataclass(frozen=True)
class CaseOutcome:
    session: str
    case_id: str
    shown: bool
    n_after: int  # sentences dictated after Space
    n_findings_after: int  # of those, sentences stating a finding
    n_truth: int  # true findings (-1: the case has no truth)
    n_reported: int  # true findings reported (at any time)
    n_reported_after: int  # ... first reported after the second look
    n_false: int  # sentences stating a finding that matches no true finding
    truth: str = "none"  # "synthetic" (findings linked to sentences), "reference" (labels) or "none"


def states_finding(text: str) -> bool:
    words = re.findall(r"[a-z]+", text.lower())
    return any(w.startswith(FINDING_WORDS) for w in words) and not any(w in NEGATIONS for w in words)


def case_outcome(session: str, case, stored: dict) -> CaseOutcome:
    """One case's outcome from its record (CaseRecord) and its stored second look."""
    sents = case.sentences
    after = np.asarray(sents.t_start) >= stored["t_space_lsl"]
    finding = np.array([states_finding(t) for t in sents.text], bool)
    truth = case.findings
    linked = {f.sentence_index for f in truth or [] if f.sentence_index >= 0}
    reported = [f.sentence_index for f in truth or [] if 0 <= f.sentence_index < len(sents)]
    false = [i for i in np.flatnonzero(finding) if i not in linked] if truth is not None else []
    return CaseOutcome(
        session=session,
        case_id=case.case_id,
        shown=bool(stored["shown"]),
        n_after=int(after.sum()),
        n_findings_after=int((after & finding).sum()),
        n_truth=len(truth) if truth is not None else -1,
        n_reported=len(reported),
        n_reported_after=sum(bool(after[i]) for i in reported),
        n_false=len(false),
        truth="synthetic" if truth is not None else "none",
    )


def case_key(case) -> str:
    """How a case is found in the reference sessions: its image's sha256, else its case id."""
    return case.image.sha256 or case.case_id


def abnormal_labels(annotation) -> set[str]:
    """The labels an annotation gives as present, "Normal radiograph" left out."""
    from radgaze.capture.annotation.labels import present_labels

    if annotation is None:
        return set()
    return {label for label in present_labels(annotation.labels) if label.casefold() != NORMAL_LABEL}


def with_reference(outcome: CaseOutcome, case, truth: set[str] | None) -> CaseOutcome:
    """The outcome scored against a reference's labels (the reader's own labels, given at sign-off after the
    second look in both arms): true labels found, labels the reference does not give (false positives)."""
    if truth is None or case.annotation is None:
        return outcome
    given = abnormal_labels(case.annotation)
    return replace(
        outcome,
        n_truth=len(truth),
        n_reported=len(truth & given),
        n_reported_after=0,  # labels come after sign-off in both arms: "after" has no meaning here
        n_false=len(given - truth),
        truth="reference",
    )


def _sensitivity(cases: list[CaseOutcome]) -> float:
    n = sum(c.n_truth for c in cases)
    return sum(c.n_reported for c in cases) / n if n > 0 else float("nan")


def _fp_per_image(cases: list[CaseOutcome]) -> float:
    return float(np.mean([c.n_false for c in cases])) if cases else float("nan")


def bootstrap_ci(cases: list, stat, rng: np.random.Generator, n_boot: int = N_BOOT) -> tuple[float, float]:
    """Percentile 95 % interval of ``stat(cases)`` over ``n_boot`` resamples of the cases (NaN: none)."""
    if not cases:
        return float("nan"), float("nan")
    idx = rng.integers(len(cases), size=(n_boot, len(cases)))
    vals = np.array([stat([cases[i] for i in row]) for row in idx], float)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def arm_row(name: str, cases: list[CaseOutcome], rng: np.random.Generator, n_boot: int) -> dict:
    """One arm's figures."""
    truth = [c for c in cases if c.n_truth >= 0]
    return {
        "arm": name,
        "cases": len(cases),
        "cases_adding_after": sum(c.n_after > 0 for c in cases),
        "findings_added_after": sum(c.n_findings_after for c in cases),
        "cases_with_truth": len(truth),
        "true_findings": sum(c.n_truth for c in truth),
        "reported_after_second_look": sum(c.n_reported_after for c in truth),
        "sensitivity": _sensitivity(truth),
        "sensitivity_ci95": bootstrap_ci(truth, _sensitivity, rng, n_boot),
        "fp_per_image": _fp_per_image(truth),
        "fp_per_image_ci95": bootstrap_ci(truth, _fp_per_image, rng, n_boot),
    }


def difference_ci(
    on: list, off: list, stat, rng: np.random.Generator, n_boot: int
) -> tuple[float, float, float]:
    """stat(on) - stat(off) and its percentile 95 % interval (each arm resampled on its own)."""
    if not on or not off:
        return float("nan"), float("nan"), float("nan")
    a = rng.integers(len(on), size=(n_boot, len(on)))
    b = rng.integers(len(off), size=(n_boot, len(off)))
    d = np.array([stat([on[i] for i in ra]) - stat([off[i] for i in rb]) for ra, rb in zip(a, b)], float)
    d = d[np.isfinite(d)]
    lo, hi = np.percentile(d, [2.5, 97.5]) if d.size else (float("nan"), float("nan"))
    return stat(on) - stat(off), float(lo), float(hi)


def trial_table(outcomes: list[CaseOutcome], *, seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """The analysis: one row per arm and the shown − not shown differences."""
    rng = np.random.default_rng(seed)
    on = [c for c in outcomes if c.shown]
    off = [c for c in outcomes if not c.shown]
    on_t, off_t = [c for c in on if c.n_truth >= 0], [c for c in off if c.n_truth >= 0]
    return {
        "arms": [arm_row("shown", on, rng, n_boot), arm_row("not shown", off, rng, n_boot)],
        "sensitivity_difference": difference_ci(on_t, off_t, _sensitivity, rng, n_boot),
        "fp_per_image_difference": difference_ci(on_t, off_t, _fp_per_image, rng, n_boot),
    }


def _f(v: float, d: int = 3) -> str:
    return "-" if v != v else f"{v:.{d}f}"


def table_lines(table: dict, skipped: int) -> list[str]:
    head = f"{'arm':<10} {'cases':>5} {'added':>6} {'found+':>6} {'truth':>5} {'sensitivity (95% CI)':>24} {'FP/image (95% CI)':>22}"
    lines = [head]
    for r in table["arms"]:
        lo, hi = r["sensitivity_ci95"]
        flo, fhi = r["fp_per_image_ci95"]
        lines.append(
            f"{r['arm']:<10} {r['cases']:>5} {r['findings_added_after']:>6} {r['reported_after_second_look']:>6} "
            f"{r['true_findings']:>5} {_f(r['sensitivity']):>8} ({_f(lo)}-{_f(hi)}) "
            f"{_f(r['fp_per_image']):>8} ({_f(flo)}-{_f(fhi)})"
        )
    for key in ("sensitivity_difference", "fp_per_image_difference"):
        d, lo, hi = table[key]
        lines.append(f"{key.replace('_', ' ')} (shown - not shown): {_f(d)} (95% CI {_f(lo)} to {_f(hi)})")
    lines.append(
        "added: finding sentences dictated after Space; found+: true findings first reported after the second "
        "look (synthetic truth); truth: true findings (synthetic, or a reference's abnormal labels scored against "
        f"the reader's labels) in the cases with truth. Cases without a second look: {skipped}"
    )
    return lines
