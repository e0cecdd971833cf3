"""The second-look trial on synthetic readers: each case draws its arm, the second look is computed from the
reading's own gaze and dictation at sign-off (the case's end, where the reader pressed Space), and in the
"on" arm the reader responds to what is marked — looks at each mark again and, with ``respond_p``, reports a
missed finding found there, or, with ``false_report_p``, reports a finding at a mark where there is none.

The response probabilities are *inputs* of the simulation, not measurements: a trial on synthetic readers
shows that the trial runs end to end and that the analysis recovers a known effect, never that the second
look helps real readers (README, "Second look").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from radgaze.capture.base.records import Words
from radgaze.capture.gazemath.second_look import (
    SecondLook,
    SecondLookLog,
    compute_second_look,
    second_look_arm,
)
from radgaze.capture.synth.reading import Dwell, GazeParams, plan_fixations, render_gaze
from radgaze.capture.synth.report import ReportSentence, time_report

LOOK_AGAIN_S = (0.3, 0.8)  # from sign-off to the first look at a mark (finding the overlay's marks)
DWELL_AGAIN_S = 1.2  # dwell on each mark before deciding
ZONE_WORDS = {"upper": "upper", "middle": "mid", "lower": "lower"}


@dataclass(frozen=True)
class TrialOptions:
    """``mode``: on / off / random (per case, seeded by ``seed``); the synthetic readers' response."""

    mode: str = "random"
    seed: int = 0
    respond_p: float = 0.6
    false_report_p: float = 0.1

    def __post_init__(self) -> None:
        second_look_arm(self.mode, self.seed, "check")  # validates the mode
        for name in ("respond_p", "false_report_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"trial {name}: expected a probability in [0, 1], got {getattr(self, name)}")


def marks(sl: SecondLook) -> list[tuple[float, float]]:
    """Image px of every place the overlay marks: each circle's centre, each shaded part's centre."""
    from scipy import ndimage

    out = [(c.x_img_px, c.y_img_px) for c in sl.clusters]
    lab, n = ndimage.label(sl.unviewed)
    for r, c in ndimage.center_of_mass(sl.unviewed, lab, range(1, n + 1)) if n else []:
        out.append(((c + 0.5) * sl.grid_scale, (r + 0.5) * sl.grid_scale))
    return out


def missed_at(record, xy: tuple[float, float], sl: SecondLook) -> int:
    """Index of the unreported finding the mark at ``xy`` points to (its box within the mark), else -1."""
    radius = max([c.radius_px for c in sl.clusters] + [4 * sl.grid_scale])
    for i, f in enumerate(record.findings or []):
        x0, y0, x1, y1 = f.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if f.sentence_index < 0 and (np.hypot(cx - xy[0], cy - xy[1]) <= radius or _in_shade(sl, cx, cy)):
            return i
    return -1


def _in_shade(sl: SecondLook, x: float, y: float) -> bool:
    r, c = int(y / sl.grid_scale), int(x / sl.grid_scale)
    return 0 <= r < sl.unviewed.shape[0] and 0 <= c < sl.unviewed.shape[1] and bool(sl.unviewed[r, c])


def second_look_case(
    rng, record, pixels, report: list[ReportSentence], opts: TrialOptions, finish
) -> SecondLookLog:
    """Draw the case's arm, compute its second look at sign-off, and in the "on" arm let the reader respond
    (gaze and dictation after sign-off appended to ``record``; ``finish(record, report)`` recomputes its
    fixations, sentences and heatmaps). Returns the log to store with the case."""
    shown = second_look_arm(opts.mode, opts.seed, record.case_id)
    t_space = float(record.t_end)
    windows = np.c_[record.sentences.window_start, record.sentences.window_end]
    size = (record.image.width, record.image.height)
    sl = compute_second_look(record.fixations, windows, size, t_lsl=t_space, pixels=pixels)
    log = SecondLookLog(record.case_id, shown, opts.mode, opts.seed, t_space, [sl])
    log.add_event(t_space, "computed")
    if not shown:
        log.add_event(t_space, "signed_off")
        return log
    log.add_event(t_space + 0.05, "shown")
    places = marks(sl)
    said: list[tuple[ReportSentence, int, tuple[float, float]]] = []
    for xy in places:
        i = missed_at(record, xy, sl)
        if i >= 0 and rng.random() < opts.respond_p:
            f = record.findings[i]
            said.append(
                (ReportSentence(f"There is a small nodule in the {f.location}.", i, "finding"), i, xy)
            )
        elif i < 0 and rng.random() < opts.false_report_p:
            said.append((ReportSentence("Possible nodule at the marked place.", -1, "finding"), -1, xy))
    t_end = _look_again(rng, record, places, said, report, t_space, finish) if places else t_space + 0.5
    log.add_event(t_end, "signed_off")
    return log


def _look_again(rng, record, places, said, report, t_space: float, finish) -> float:
    """Append the reader's second look to ``record``: a dwell on each mark, then the added sentences."""
    ppd_img = float(np.median(record.fixations["ppd_img"]))
    params = GazeParams(rate_hz=_rate(record))
    t = t_space + rng.uniform(*LOOK_AGAIN_S)
    dwells = []
    for xy in places:
        dwells.append(Dwell(t, t + DWELL_AGAIN_S, np.asarray([xy]), kind="second look", long_fixations=True))
        t += DWELL_AGAIN_S
    extra_report = [s for s, _, _ in said]
    words, timed = time_report(rng, extra_report, t + 0.8) if extra_report else (Words.empty(), [])
    for (_, _, xy), ts in zip(said, timed):
        dwells.append(
            Dwell(ts.t_start - 0.8, ts.t_end, np.asarray([xy]), kind="sentence", long_fixations=True)
        )
    t_end = (timed[-1].t_end if timed else t) + 0.5
    sched, _ = plan_fixations(rng, dwells, ppd_img, params)
    gaze, _ = render_gaze(
        rng,
        sched,
        record.view_events,
        record.display,
        (record.image.width, record.image.height),
        t_space,
        t_end,
        params,
    )
    record.gaze = np.concatenate([record.gaze, gaze])
    record.words = _concat_words(record.words, words)
    record.t_end = t_end
    n_before = len(report)
    finish(record, report + extra_report)
    for k, (_, i, _) in enumerate(said):
        if i >= 0:
            record.findings[i] = replace(record.findings[i], sentence_index=n_before + k)
    return t_end


def _rate(record) -> float:
    t = record.gaze["t_lsl"]
    return float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 else 250.0


def _concat_words(a: Words, b: Words) -> Words:
    if len(b) == 0:
        return a
    return Words(
        np.concatenate([a.t_start, b.t_start]),
        np.concatenate([a.t_end, b.t_end]),
        list(a.text) + list(b.text),
        np.concatenate([a.probability, np.asarray(b.probability, a.probability.dtype)]),
    )


def overlay_matches_truth(record, sl: SecondLook) -> bool:
    """Whether the second look marks exactly what the case's synthetic reader missed (attrs reader_error):
    the skipped zone, shaded over the nodule, and nothing else (search); one circle within 1 deg of the
    nodule and nothing else (decision); nothing at all (recognition, complete and default readers)."""
    truth = record.attrs.get("reader_error")
    kind = truth["kind"] if truth else "complete"
    if kind == "recognition" or truth is None:
        return sl.empty
    ppd = float(np.median(record.fixations["ppd_img"]))
    if kind == "search":
        r, c = int(truth["y_img_px"] / sl.grid_scale), int(truth["x_img_px"] / sl.grid_scale)
        return sl.zones_not_viewed == [truth["zone"]] and not sl.clusters and bool(sl.unviewed[r, c])
    if len(sl.clusters) != 1 or sl.unviewed.any() or sl.zones_not_viewed:
        return False
    c = sl.clusters[0]
    return bool(np.hypot(c.x_img_px - truth["x_img_px"], c.y_img_px - truth["y_img_px"]) < ppd)


def mark_rates(kinds: dict[str, int], seed: int, image_size: int = 1024) -> dict[str, tuple[int, int]]:
    """{reader: (cases whose overlay matched the truth, cases)} over ``kinds`` = {reader: n cases}, each
    reader's cases drawn from seeds seed, seed + 1, ... (5 cases a reading), the overlay computed at the end
    of the dictation (Space) on the image estimate of the lung fields."""
    from radgaze.capture.synth.session import synth_reading

    out = {}
    for kind, n in kinds.items():
        ok = total = 0
        for k in range((n + 4) // 5):
            reading = synth_reading(seed + k, n_cases=min(5, n - total), image_size=image_size, reader=kind)
            for rec, pixels in zip(reading, reading.images):
                windows = np.c_[rec.sentences.window_start, rec.sentences.window_end]
                wh = (rec.image.width, rec.image.height)
                sl = compute_second_look(rec.fixations, windows, wh, t_lsl=rec.t_end, pixels=pixels)
                ok += overlay_matches_truth(rec, sl)
                total += 1
        out[kind] = (ok, total)
    return out
