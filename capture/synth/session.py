"""Whole synthetic readings: phantom case + dictated report + gaze, assembled into CaseRecords and written
as session files.

A *reading* is one session file: one radiologist reading ``cases_per_file`` cases back to back on one LSL
clock. Each case's image is a 16-bit PNG written beside the session file, and its ImageRef.path is the PNG's
name (relative to the session file). Every case depends only on ``(seed, case index)``, so the first cases of
a 3-case and a 30-case reading with the same seed are identical, and files of one call never share case ids.

The reading of one case follows the global-focal model of radiograph reading (Kundel et al. 2007,
"Holistic component of image perception in mammogram interpretation"; Nodine & Kundel 1987): a glance at the
centre, a systematic search (right lung top to bottom, left lung, heart, mediastinum, costophrenic angles,
apices) with refixations on what is abnormal, then dictation, each sentence preceded by a look at what it is
about (eye-voice lead; radgaze.capture.synth.reading).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from radgaze.capture.base.records import (
    VIEW_DTYPE,
    VIEW_FIT,
    VIEW_ZOOM,
    CaseRecord,
    DisplayGeometry,
    Finding,
    ImageRef,
)
from radgaze.capture.gazemath.align import sentence_heatmaps
from radgaze.capture.gazemath.fixations import IVT_WINDOW_S, fixation_settings, fixations_from_gaze
from radgaze.capture.gazemath.geometry import fit_view, ppd_screen
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.gazemath.punctuation import apply_dictated_punctuation
from radgaze.capture.io.display import ppd_record
from radgaze.capture.store.writer import SessionWriter
from radgaze.capture.synth.phantom import (
    ZONES,
    Phantom,
    draw_case,
    finding_mask,
    random_case_findings,
    region_mask,
    zone_centre,
)
from radgaze.capture.synth.readers import (
    ERROR_KINDS,
    check_reader,
    error_case_findings,
    make_plan,
    outside,
    planned_search_path,
)
from radgaze.capture.synth.reading import (
    EYE_VOICE_LEAD_RANGE_S,
    Dwell,
    FixationSchedule,
    GazeParams,
    plan_fixations,
    render_gaze,
)
from radgaze.capture.synth.report import ReportSentence, compose_report, time_report

DEFAULT_IMAGE_SIZE = 2048  # px, a typical CR/DR chest film digitised at ~0.17 mm (35 cm / 2048)
DEFAULT_RATE_HZ = 250.0
DEFAULT_T_START = 1000.0  # LSL seconds of the first case (an arbitrary clock origin, like local_clock())
CASE_ONSET_LATENCY_S = (0.2, 0.35)  # first saccade after a case appears (visual onset latency ~200 ms)
CASE_BREAK_S = (1.0, 3.0)  # between cases (loading the next one)
ZOOM_FACTOR = 2.0


@dataclass(frozen=True)
class SynthOptions:
    """How synthetic readings are drawn. ``spoken_punctuation_p`` is the chance a case is dictated with
    spoken punctuation ("zone period") instead of Whisper-style attached marks; ``zoom_p`` the chance the
    reader zooms in on one finding while dictating it; ``p_normal`` the chance of a normal study;
    ``max_findings`` the most findings an abnormal study has (1: single-label studies)."""

    image_size: int = DEFAULT_IMAGE_SIZE
    rate_hz: float = DEFAULT_RATE_HZ
    display: DisplayGeometry = field(default_factory=DisplayGeometry)
    spoken_punctuation_p: float = 0.25
    zoom_p: float = 0.3
    p_normal: float = 0.25
    max_findings: int = 3
    reader: str = "default"  # radgaze.capture.synth.readers.READERS: complete, or one kind of error
    ivt_window_s: float = IVT_WINDOW_S  # the I-VT velocity window (--ivt-window-ms)

    def __post_init__(self) -> None:
        check_reader(self.reader)
        if not 32 <= self.image_size <= 8192:
            raise ValueError(f"image_size: expected 32..8192 px, got {self.image_size}")
        GazeParams(rate_hz=self.rate_hz)  # validates the rate


class SynthReading(list):
    """The CaseRecords of one synthetic reading (a list), with ``images`` (uint16 arrays) and ``pngs`` (the
    encoded 16-bit PNG bytes whose sha256 the records carry) in the same order."""

    def __init__(self, records=(), images=(), pngs=()) -> None:
        super().__init__(records)
        self.images: list[np.ndarray] = list(images)
        self.pngs: list[bytes] = list(pngs)
        self.second_looks: list = []  # SecondLookLog per case when read in a second-look trial


def encode_png16(pixels: np.ndarray) -> bytes:
    """16-bit greyscale PNG bytes of a uint16 image."""
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 image, got {pixels.dtype} {pixels.shape}")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


def _mask_points(rng: np.random.Generator, mask: np.ndarray, scale: float, n: int) -> np.ndarray:
    """n random image-px points inside a heatmap-grid mask (uniform within its cells); (n, 2)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("expected a non-empty mask to draw gaze targets from")
    k = rng.integers(rows.size, size=n)
    return np.stack([(cols[k] + rng.random(n)) * scale, (rows[k] + rng.random(n)) * scale], axis=1)


def _points_outside(rng, mask: np.ndarray, scale: float, n: int, keep_out: np.ndarray | None) -> np.ndarray:
    """n gaze targets in ``mask`` (heatmap grid) none of which is in ``keep_out`` (where a reader who made
    an error never looks again); fewer when the mask is mostly kept out."""
    if keep_out is None:
        return _mask_points(rng, mask, scale, n)
    pts = outside(
        _mask_points(rng, mask & ~keep_out if (mask & ~keep_out).any() else mask, scale, 4 * n),
        keep_out,
        scale,
    )
    return pts[:n] if len(pts) else _mask_points(rng, mask, scale, n)


def _search_path(
    rng: np.random.Generator, ph: Phantom, masks: dict[str, np.ndarray], size: int, scale: float
) -> np.ndarray:
    """The systematic search: centre glance, each lung top to bottom (two points per zone), heart and
    mediastinum (before or after the lungs), costophrenic angles, apices; abnormal places get 1-3
    refixations when passed. (k, 2) image px."""
    pts: list[np.ndarray] = [np.array([[0.5 * size, 0.45 * size]])]
    finding_pts = {i: _mask_points(rng, m, scale, 3) for i, m in masks.items() if isinstance(i, int)}

    def refixate(match) -> None:
        for i, s in enumerate(ph.findings):
            if match(s):
                pts.append(finding_pts[i][: rng.integers(1, 4)])

    def lung(side: str) -> None:
        for zone in ZONES:
            cx, cy = zone_centre(ph.anatomy, side, zone)
            for dx in rng.permutation([-0.05, 0.05]):
                pts.append(
                    np.array([[(cx + dx + rng.normal(0, 0.015)) * size, (cy + rng.normal(0, 0.02)) * size]])
                )
            refixate(lambda s, side=side, zone=zone: s.side == side and s.zone == zone)

    def region(name: str) -> None:
        pts.append(_mask_points(rng, masks[name], scale, 2 if name in ("heart", "mediastinum") else 3))
        if name == "heart":
            refixate(lambda s: s.label == "cardiomegaly")

    # readers differ in order: most go lung by lung (right first, as the film is read left to right), some
    # inside-out (heart and mediastinum first); the periphery (angles, apices) comes last
    lungs = [lambda: lung("right"), lambda: lung("left")]
    if rng.random() < 0.3:
        lungs.reverse()
    centre = [lambda: region("heart"), lambda: region("mediastinum")]
    blocks = centre + lungs if rng.random() < 0.3 else lungs + centre
    for block in blocks + [lambda: region("costophrenic_angles"), lambda: region("apices")]:
        block()
    return np.concatenate(pts)


def _finding_records(ph: Phantom, masks: dict, scale: float) -> list[Finding]:
    out = []
    for i, s in enumerate(ph.findings):
        m = masks[i]
        rows, cols = np.nonzero(m)
        box = (cols.min() * scale, rows.min() * scale, (cols.max() + 1) * scale, (rows.max() + 1) * scale)
        out.append(Finding(s.label, s.location, tuple(float(v) for v in box), m.copy(), -1))
    return out


def _view_window(pixels: np.ndarray) -> tuple[float, float]:
    """Default window (centre, width) from the 0.5-99.5 percentiles (as radgaze.capture.io.images does without tags)."""
    lo, hi = np.percentile(pixels[::4, ::4], (0.5, 99.5))
    return float((lo + hi) / 2), float(max(hi - lo, 1.0))


def _zoom_row(
    fit: np.ndarray, t: float, centre_px: tuple[float, float], display: DisplayGeometry
) -> np.ndarray:
    row = fit.copy()
    row["t_lsl"], row["kind"] = t, VIEW_ZOOM
    row["scale"] = fit["scale"] * ZOOM_FACTOR
    row["offset_x"] = display.screen_w_px / 2 - centre_px[0] * row["scale"]
    row["offset_y"] = display.screen_h_px / 2 - centre_px[1] * row["scale"]
    return row


def _sentence_dwells(
    rng: np.random.Generator,
    timed: list,
    report: list[ReportSentence],
    targets: list[np.ndarray],
    t_free: float,
    lead_s: np.ndarray,
    wander_pts: np.ndarray,
    t_case_end: float,
) -> tuple[list[Dwell], list[tuple[float, float]]]:
    """One dwell per sentence, from (start - eye-voice lead) to its end, with wandering between them."""
    dwells, spans = [], []
    starts = [max(ts.t_start - lead, t_free) for ts, lead in zip(timed, lead_s)]
    for k, ts in enumerate(timed):
        d0 = starts[k] if k == 0 else max(starts[k], timed[k - 1].t_end - 0.15)
        d1 = ts.t_end if k + 1 == len(timed) else min(ts.t_end, max(starts[k + 1], ts.t_end - 0.15))
        if dwells and d0 - dwells[-1].t_end > 0.25:
            dwells.append(Dwell(dwells[-1].t_end, d0, wander_pts, kind="wander"))
        dwells.append(Dwell(d0, d1, targets[k], kind="sentence", long_fixations=report[k].finding_index >= 0))
        spans.append((d0, d1))
    dwells.append(Dwell(dwells[-1].t_end, t_case_end, wander_pts, kind="wander"))
    return dwells, spans


def _draw_and_fit(rng: np.random.Generator, opts: SynthOptions, findings, t_start: float):
    """The case's phantom (drawn from ``rng`` unless ``findings`` are given), its PNG, finding masks on the
    heatmap grid, the grid's scale, the fitted view row and image px per degree in that view."""
    size, display = opts.image_size, opts.display
    ph = draw_case(
        rng,
        size,
        findings if findings is not None else random_case_findings(rng, opts.p_normal, opts.max_findings),
    )
    png = encode_png16(ph.pixels)
    h_hm, w_hm, scale = heatmap_grid(size, size)
    masks = _case_masks(ph, h_hm, w_hm)
    fit = np.asarray(fit_view(size, size, display, t_lsl=t_start, window=_view_window(ph.pixels)), VIEW_DTYPE)
    fit = fit.reshape(1)  # one VIEW_DTYPE row, kept as a 1-element array
    ppd_img = float(np.mean(ppd_screen(display))) / float(fit["scale"][0])
    return ph, png, masks, scale, fit, ppd_img


def synth_case(
    rng: np.random.Generator,
    case_id: str,
    t_start: float,
    opts: SynthOptions,
    *,
    findings: list[tuple[str, str, str]] | None = None,
    trial=None,
    second_looks: list | None = None,
) -> tuple[CaseRecord, np.ndarray, bytes]:
    """One synthetic case read from ``t_start`` (LSL s): (record, uint16 image, its PNG bytes). With ``trial``
    (synth.trial.TrialOptions) its second look is drawn, computed, responded to, logged in ``second_looks``."""
    size, display = opts.image_size, opts.display
    params = GazeParams(rate_hz=opts.rate_hz)
    findings = error_case_findings(rng) if opts.reader in ERROR_KINDS else findings
    ph, png, masks, scale, fit, ppd_img = _draw_and_fit(rng, opts, findings, t_start)
    plan = make_plan(opts.reader, rng, ph, masks, scale, ppd_img)

    # search, then dictation timed from the end of the search
    t_first_look = t_start + rng.uniform(*CASE_ONSET_LATENCY_S)
    search = Dwell(
        t_first_look, t_first_look, _reader_search_path(rng, ph, masks, opts, scale, plan), ordered=True
    )
    sched_search, t_search_end = plan_fixations(rng, [search], ppd_img, params)
    report = compose_report(rng, [] if opts.reader in ERROR_KINDS else ph.findings)  # the miss: not said
    lead_s = rng.uniform(*EYE_VOICE_LEAD_RANGE_S, len(report))
    spoken = bool(rng.random() < opts.spoken_punctuation_p)
    words, timed = time_report(rng, report, t_search_end + lead_s[0], spoken_punctuation=spoken)
    words, _ = apply_dictated_punctuation(words, final=True)  # stored as the ASR stores them: "." rows
    t_end = timed[-1].t_end + rng.uniform(0.5, 1.5)
    targets = [masks[s.finding_index] if s.finding_index >= 0 else masks[s.target] for s in report]
    target_pts = [_points_outside(rng, m, scale, 24, plan.keep_out) for m in targets]
    wander = _points_outside(rng, masks["lungs"] | masks["heart"], scale, 64, plan.keep_out)
    dwells, spans = _sentence_dwells(rng, timed, report, target_pts, t_search_end, lead_s, wander, t_end)
    last = np.array([sched_search.x_img_px[-1], sched_search.y_img_px[-1]])
    sched_talk, _ = plan_fixations(rng, dwells, ppd_img, params, start_xy=last)
    sched = _concat_schedules(sched_search, sched_talk)

    view_events, zoomed = _view_events(rng, fit, report, masks, spans, scale, display, opts.zoom_p)

    gaze, gaps = render_gaze(rng, sched, view_events, display, (size, size), t_start, t_end, params)
    image = ImageRef(f"{case_id}.png", hashlib.sha256(png).hexdigest(), size, size, 16, "MONOCHROME2")
    record = CaseRecord(
        case_id=case_id,
        image=image,
        display=display,
        t_start=t_start,
        t_end=t_end,
        gaze=gaze,
        view_events=view_events,
        gaps=gaps,
        words=words,
        heatmap_scale=scale,
        findings=_finding_records(ph, masks, scale),
        labels=sorted({s.label for s in ph.findings}) or ["normal"],
        attrs=_case_attrs(ph, display, spoken=spoken, lead_s=lead_s, zoomed=zoomed, n_planned=len(sched)),
    )
    _add_fixations_and_heatmaps(record, report, opts.ivt_window_s)
    _reader_truth_and_trial(rng, record, ph.pixels, report, plan, trial, second_looks)
    return record, ph.pixels, png


def _reader_search_path(rng, ph, masks: dict, opts: SynthOptions, scale: float, plan) -> np.ndarray:
    """The usual search path, or the planned one of a complete or erring reader (synth.readers)."""
    if opts.reader == "default":
        return _search_path(rng, ph, masks, opts.image_size, scale)
    sample = lambda m, n: _mask_points(rng, m, scale, n)  # noqa: E731
    return planned_search_path(rng, ph, masks, opts.image_size, scale, plan, sample)


def _reader_truth_and_trial(rng, record: CaseRecord, pixels, report, plan, trial, second_looks) -> None:
    """Store which reader read the case and what it missed; in a trial, its second look (synth.trial)."""
    if plan.kind != "default":
        record.attrs["reader"] = plan.kind
    if plan.kind in ERROR_KINDS:
        record.attrs["reader_error"] = plan.truth()
    if trial is not None:
        from radgaze.capture.synth.trial import second_look_case

        second_looks.append(second_look_case(rng, record, pixels, report, trial, _add_fixations_and_heatmaps))


SYNTHETIC_PPD_SOURCE = "synthetic: the simulated display and viewing distance (exact by construction)"


def _case_attrs(
    ph, display: DisplayGeometry, *, spoken: bool, lead_s: np.ndarray, zoomed: int, n_planned: int
) -> dict:
    """What the generator chose for a case, stored with it (the ground truth tests and experiments use)."""
    return {
        "ppd": ppd_record(display, SYNTHETIC_PPD_SOURCE),
        "synthetic": True,
        "spoken_punctuation": spoken,
        "eye_voice_lead_s": [round(float(v), 3) for v in lead_s],
        "zoomed_sentence": zoomed,
        "cardiothoracic_ratio": round(ph.anatomy.cardiothoracic_ratio(), 3),
        "planned_fixations": n_planned,
    }


def _case_masks(ph, h_hm: int, w_hm: int) -> dict:
    """Masks on the heatmap grid: each finding by its index, and the named anatomical regions."""
    masks: dict = {i: finding_mask(s, ph.anatomy, h_hm, w_hm) for i, s in enumerate(ph.findings)}
    for name in ("heart", "mediastinum", "lungs", "apices", "costophrenic_angles", "bones"):
        masks[name] = region_mask(name, ph.anatomy, h_hm, w_hm)
    return masks


def _view_events(
    rng, fit, report, masks, spans, scale: float, display, zoom_p: float
) -> tuple[np.ndarray, int]:
    """The view: fitted; with probability ``zoom_p`` zoomed on one finding while it is dictated, then fitted
    again. Returns the VIEW_DTYPE rows and the zoomed sentence's index (-1: none)."""
    views = [fit]
    zoomed = -1
    finding_sentences = [k for k, s in enumerate(report) if s.finding_index >= 0]
    if finding_sentences and rng.random() < zoom_p:
        zoomed = int(rng.choice(finding_sentences))
        rows, cols = np.nonzero(masks[report[zoomed].finding_index])
        centre = ((cols.mean() + 0.5) * scale, (rows.mean() + 0.5) * scale)
        back = fit.copy()
        back["t_lsl"], back["kind"] = spans[zoomed][1], VIEW_FIT
        views += [_zoom_row(fit, spans[zoomed][0], centre, display), back]
    return np.concatenate(views), zoomed


def _concat_schedules(a: FixationSchedule, b: FixationSchedule) -> FixationSchedule:
    return FixationSchedule(
        np.concatenate([a.t_start, b.t_start]),
        np.concatenate([a.t_end, b.t_end]),
        np.concatenate([a.x_img_px, b.x_img_px]),
        np.concatenate([a.y_img_px, b.y_img_px]),
        a.kind + b.kind,
    )


def _add_fixations_and_heatmaps(
    record: CaseRecord, report: list[ReportSentence], ivt_window_s: float | None = None
) -> None:
    """Detect fixations and build sentence heatmaps with the same functions live capture uses; link each
    finding to the sentence that names it. ``ivt_window_s`` None: the window the case was detected with."""
    if ivt_window_s is None:
        ivt_window_s = record.attrs.get("fixations", {}).get("window_s", IVT_WINDOW_S)
    params = {"window_s": ivt_window_s}
    record.fixations = fixations_from_gaze(record.gaze, record.view_events, record.display, **params)
    record.attrs["fixations"] = fixation_settings("ivt", params)
    sentences, heatmaps = sentence_heatmaps(record)
    if len(sentences) != len(report):
        raise AssertionError(
            f"{record.case_id}: dictated {len(report)} sentences, alignment split {len(sentences)}"
        )
    record.sentences, record.heatmaps = sentences, heatmaps
    for k, s in enumerate(report):
        if s.finding_index >= 0:
            record.findings[s.finding_index] = replace(record.findings[s.finding_index], sentence_index=k)


def synth_reading(
    seed: int,
    *,
    n_cases: int = 3,
    image_size: int = DEFAULT_IMAGE_SIZE,
    rate_hz: float = DEFAULT_RATE_HZ,
    display: DisplayGeometry | None = None,
    first_case: int = 0,
    t_start: float = DEFAULT_T_START,
    findings: list[list[tuple[str, str, str]]] | None = None,
    trial=None,
    **options: float,
) -> SynthReading:
    """A synthetic reading of ``n_cases`` cases, back to back from ``t_start`` (LSL s).

    Case i (counting from ``first_case``) is drawn from ``np.random.default_rng([seed, i])`` and is called
    ``synth{seed}-{i:04d}``; its image is ``reading.images[k]`` (uint16, image_size x image_size) and
    ``ImageRef.path`` is ``{case_id}.png``. ``findings`` (optional, per case) forces (label, side, zone)
    choices, e.g. ``[[("nodule", "left", "upper")], []]``; ``options`` go to :class:`SynthOptions`."""
    if n_cases < 1:
        raise ValueError(f"n_cases: expected >= 1, got {n_cases}")
    if findings is not None and len(findings) != n_cases:
        raise ValueError(f"findings: expected one list per case ({n_cases}), got {len(findings)}")
    opts = SynthOptions(
        image_size=image_size, rate_hz=rate_hz, display=display or DisplayGeometry(), **options
    )
    out = SynthReading()
    t = t_start
    for k in range(n_cases):
        i = first_case + k
        rng = np.random.default_rng([seed, i])
        rec, pixels, png = synth_case(
            rng, f"synth{seed}-{i:04d}", t, opts, findings=None if findings is None else findings[k],
            trial=trial, second_looks=out.second_looks,
        )  # fmt: skip
        out.append(rec)
        out.images.append(pixels)
        out.pngs.append(png)
        t = rec.t_end + rng.uniform(*CASE_BREAK_S)
    return out


def write_synthetic_sessions(
    out_dir: str | Path,
    n_cases: int,
    seed: int,
    *,
    cases_per_file: int = 4,
    image_size: int = DEFAULT_IMAGE_SIZE,
    rate_hz: float = DEFAULT_RATE_HZ,
    display: DisplayGeometry | None = None,
    trial=None,
    **options: float,
) -> list[Path]:
    """Write ``n_cases`` synthetic cases as session files of ``cases_per_file`` cases each
    (``synth-s{seed}-{k:03d}.h5``) with each case's 16-bit PNG beside them. Returns the session paths."""
    if cases_per_file < 1:
        raise ValueError(f"cases_per_file: expected >= 1, got {cases_per_file}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    display = display or DisplayGeometry()
    paths = []
    for k, first in enumerate(range(0, n_cases, cases_per_file)):
        n = min(cases_per_file, n_cases - first)
        reading = synth_reading(
            seed,
            n_cases=n,
            image_size=image_size,
            rate_hz=rate_hz,
            display=display,
            first_case=first,
            trial=trial,
            **options,
        )
        provenance = {
            "source": "synthetic",
            "generator": "radgaze synth",
            "seed": seed,
            "first_case": first,
            "tracker": {"name": "radgaze synthetic eye", "rate_hz": rate_hz},
            "asr_model": "synthetic dictation (exact word times)",
            "image_size": image_size,
        }
        path = out_dir / f"synth-s{seed}-{k:03d}.h5"
        with SessionWriter(path, reader_id=f"synthetic-reader-{seed}", provenance=provenance) as w:
            for rec, png in zip(reading, reading.pngs):
                (out_dir / rec.image.path).write_bytes(png)
                w.write_case(rec)
            for log in reading.second_looks:
                w.write_second_look(log.case_id, *log.payload())
        paths.append(path)
    return paths
