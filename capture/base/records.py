"""In-memory records shared by capture, the session store, training and the app.

Streams are numpy structured arrays sorted by time (seconds on the LSL clock, ``pylsl.local_clock()``),
validated once at the boundary (:func:`validate_sorted`). Image coordinates are pixels of the full-resolution
image, origin at the top-left pixel's corner, x to the right, y down. Screen coordinates are pixels of the
display, same orientation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------------
# Gaze samples. ``flags`` is a bit field.
GAZE_VALID = 1  # the tracker reported a usable sample (not a blink / loss)
GAZE_ON_IMAGE = 2  # the sample maps inside the part of the image shown on screen
GAZE_GAP_BEFORE = 4  # the stream was lost before this sample (inlet recovered); see CaseRecord.gaps

GAZE_DTYPE = np.dtype(
    [
        ("t_lsl", "f8"),
        ("x_screen_px", "f4"),
        ("y_screen_px", "f4"),
        ("x_img_px", "f4"),
        ("y_img_px", "f4"),
        ("pupil", "f4"),  # tracker units (mm or area), NaN when unknown
        ("flags", "u1"),
    ]
)

FIXATION_DTYPE = np.dtype(
    [
        ("t_start", "f8"),
        ("t_end", "f8"),
        ("x_img_px", "f4"),
        ("y_img_px", "f4"),
        ("x_screen_px", "f4"),
        ("y_screen_px", "f4"),
        ("ppd_img", "f4"),  # image pixels per degree of visual angle at that moment (includes zoom)
    ]
)

# View state snapshots: one row per change (zoom, pan, window/level, invert, case shown).
# Image -> screen: x_screen = x_img * scale + offset_x ; y_screen = y_img * scale + offset_y
VIEW_ZOOM, VIEW_PAN, VIEW_WINDOW, VIEW_INVERT, VIEW_FIT, VIEW_CASE = 1, 2, 3, 4, 5, 6
VIEW_KIND_NAMES = {
    VIEW_ZOOM: "zoom",
    VIEW_PAN: "pan",
    VIEW_WINDOW: "window",
    VIEW_INVERT: "invert",
    VIEW_FIT: "fit",
    VIEW_CASE: "case",
}
VIEW_DTYPE = np.dtype(
    [
        ("t_lsl", "f8"),
        ("kind", "u1"),
        ("scale", "f8"),  # screen px per image px
        ("offset_x", "f8"),  # screen px
        ("offset_y", "f8"),
        ("window_center", "f4"),  # in image pixel units
        ("window_width", "f4"),
        ("invert", "u1"),
    ]
)

GAP_DTYPE = np.dtype([("t_lost", "f8"), ("t_back", "f8")])  # stream outages seen by the inlet

# Clock steps of a gaze source (schema 4): at ``t_lsl`` (the first sample after the step, on the corrected
# timeline) the stream's own stamps jumped by ``step_s`` (+: forward) more than the time that passed; the samples
# after it are kept, moved back by the step. ``source``: CLOCK_STEP_STAMPS (seen in the stamps against their
# arrival, or against the recording's span in an import) or CLOCK_STEP_OFFSET (the inlet's clock offset jumped;
# the samples were already moved by LSL's clock sync, nothing corrected).
CLOCK_STEP_STAMPS, CLOCK_STEP_OFFSET = 1, 2
CLOCK_EVENT_DTYPE = np.dtype([("t_lsl", "f8"), ("step_s", "f8"), ("source", "u1")])


def empty(dtype: np.dtype) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


def validate_sorted(t: np.ndarray, name: str) -> None:
    """Raise ValueError unless ``t`` is 1-D, finite and non-decreasing."""
    t = np.asarray(t)
    if t.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of times, got shape {t.shape}")
    if t.size and not np.all(np.isfinite(t)):
        raise ValueError(f"{name}: expected finite times, got {int((~np.isfinite(t)).sum())} non-finite")
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise ValueError(f"{name}: expected times sorted ascending")


@dataclass
class Words:
    """Final ASR (or imported) words. Times in seconds on the LSL clock."""

    t_start: np.ndarray  # (n,) f8
    t_end: np.ndarray  # (n,) f8
    text: list[str]
    probability: np.ndarray  # (n,) f4, 1.0 when unknown

    @classmethod
    def empty(cls) -> Words:
        return cls(np.zeros(0), np.zeros(0), [], np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.text)


@dataclass
class Sentences:
    """Dictated sentences and the gaze window each heatmap was built from.

    ``heatmap_index[i]`` is the row of the case's heatmap stack for sentence i, or -1 when the sentence had no
    fixation in its window (the explicit empty marker; no zero map is stored).
    """

    t_start: np.ndarray  # first word start (LSL s)
    t_end: np.ndarray  # last word end (LSL s)
    window_start: np.ndarray  # gaze window start = t_start - eye-voice lead
    window_end: np.ndarray
    text: list[str]
    heatmap_index: np.ndarray  # (n,) i4
    n_fixations: np.ndarray  # (n,) i4

    @classmethod
    def empty(cls) -> Sentences:
        z = np.zeros(0)
        return cls(z, z.copy(), z.copy(), z.copy(), [], np.zeros(0, np.int32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.text)


@dataclass
class DisplayGeometry:
    """The physical display the reading was done on (defaults: a 21.3" 3 MP diagnostic monitor, portrait
    1536x2048 at 0.2115 mm pitch, e.g. Barco Nio MDNC-3421 / EIZO RX360 data sheets; 650 mm viewing distance, a
    typical reading-room distance used by REFLACX-style setups)."""

    screen_w_px: int = 1536
    screen_h_px: int = 2048
    screen_w_mm: float = 325.0
    screen_h_mm: float = 433.0
    viewing_distance_mm: float = 650.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageRef:
    path: str  # as given when recorded (may be relative to the session file)
    sha256: str
    width: int
    height: int
    bits_stored: int = 16
    photometric: str = "MONOCHROME2"


@dataclass
class Finding:
    """Ground truth of a synthetic (or annotated) finding. Box in image px (x0, y0, x1, y1)."""

    label: str  # e.g. "pleural_effusion"
    location: str  # e.g. "left lower zone"
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None  # (H_hm, W_hm) bool at heatmap resolution, or None
    sentence_index: int = -1  # the sentence that names it


@dataclass
class Audio:
    samples: np.ndarray  # (n,) int16 mono
    sample_rate: int
    block_t_lsl: np.ndarray  # (k,) f8 LSL time of the first sample of each block
    block_first_sample: np.ndarray  # (k,) i8

    def t_start(self) -> float:
        return float(self.block_t_lsl[0]) if self.block_t_lsl.size else float("nan")


# ---------------------------------------------------------------------------------------------------------
# Reader annotations after dictation (the REFLACX protocol; capture/annotation/ loads label sets and protocols).
# Shapes and the chest box are in image px; certainties are level numbers on the label set's scale
# (REFLACX: 1 = Unlikely < 10 % ... 5 = Consistent with > 90 %).
SHAPE_ELLIPSE = "ellipse"
SHAPE_BOX = "box"
SHAPE_KINDS = (SHAPE_ELLIPSE, SHAPE_BOX)

# Protocol steps, in the order a reader does them (REFLACX xray_et.m: dictate, labels, ellipses, chest box, text)
STEP_DICTATE = "dictate"
STEP_LABELS = "labels"
STEP_SHAPES = "shapes"
STEP_CHEST_BOX = "chest_box"
STEP_TRANSCRIPT = "transcript"
STEPS = (STEP_DICTATE, STEP_LABELS, STEP_SHAPES, STEP_CHEST_BOX, STEP_TRANSCRIPT)


@dataclass(frozen=True)
class LabelChoice:
    """One image-level label with its certainty level; ``text`` is the free text of an "Other" label."""

    label: str
    certainty: int
    text: str = ""


@dataclass
class Shape:
    """An ellipse (inscribed in its box) or a box, (x0, y0, x1, y1) in image px with x0 < x1 and y0 < y1."""

    kind: str
    x0: float
    y0: float
    x1: float
    y1: float
    labels: tuple[str, ...] = ()
    certainty: int = 0  # level on the label set's scale; 0 = not chosen yet

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether image points (x, y) lie inside the shape (ellipse: inscribed in the box)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        inside_box = (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)
        if self.kind == SHAPE_BOX:
            return inside_box
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        rx, ry = (self.x1 - self.x0) / 2, (self.y1 - self.y0) / 2
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


@dataclass
class CaseAnnotation:
    """Everything a reader annotated on one case after dictating it."""

    labels: list[LabelChoice] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)
    chest_box: tuple[float, float, float, float] | None = None
    confirmed_steps: list[str] = field(default_factory=list)  # in the order the reader confirmed them
    label_set: str = ""  # the LabelSet.name the labels and certainties refer to
    protocol: str = ""  # the Protocol.name the reader followed

    def label_names(self) -> list[str]:
        return [c.label for c in self.labels]

    def is_empty(self) -> bool:
        return not (self.labels or self.shapes or self.chest_box or self.confirmed_steps)


@dataclass
class TranscriptCorrection:
    """The reader's corrections of a case's transcript (capture/gazemath/correction.py).

    ``edits`` holds one batch per correction saved, oldest first, each a list of JSON-ready edits
    (``{"kind": "fix", "index": 3, "text": "effusion"}``) whose indices name the words as the batch before left
    them (the first: the recognised words). ``recomputed`` lists the sentences of the last batch whose heatmaps
    were computed anew (the others kept the heatmap of an unchanged sentence). A retranscription is stored the
    same way (``asr`` says which model made its words; their times are the model's, not the edits')."""

    edits: list[list[dict]]
    recomputed: list[int]
    lead_s: float  # the eye-voice lead the sentence windows were built with (s)
    saved_utc: str = ""  # when the store wrote it ("" before it is stored)
    # a retranscription (radgaze retranscribe): the model and decoding options that re-recognised the case audio,
    # its one batch the word diff from the recognised words; None: the reader's own correction
    asr: dict | None = None

    @property
    def n_edits(self) -> int:
        return sum(len(batch) for batch in self.edits)


@dataclass
class CaseRecord:
    """Everything recorded for one case of one reading."""

    case_id: str
    image: ImageRef
    display: DisplayGeometry
    t_start: float
    t_end: float
    gaze: np.ndarray = field(default_factory=lambda: empty(GAZE_DTYPE))
    fixations: np.ndarray = field(default_factory=lambda: empty(FIXATION_DTYPE))
    view_events: np.ndarray = field(default_factory=lambda: empty(VIEW_DTYPE))
    gaps: np.ndarray = field(default_factory=lambda: empty(GAP_DTYPE))
    clock_events: np.ndarray = field(default_factory=lambda: empty(CLOCK_EVENT_DTYPE))  # CLOCK_EVENT_DTYPE
    words: Words = field(default_factory=Words.empty)
    sentences: Sentences = field(default_factory=Sentences.empty)
    heatmaps: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.float32))
    heatmap_scale: float = 1.0  # image px per heatmap px (heatmaps are stored at reduced resolution)
    audio: Audio | None = None
    findings: list[Finding] | None = None  # ground truth, when synthetic or annotated
    labels: list[str] = field(default_factory=list)  # case-level labels ("normal", "cardiomegaly", ...)
    complete: bool = True  # False when the recorder died before closing the case
    attrs: dict = field(default_factory=dict)  # free-form extras (source dataset ids, ...)
    annotation: CaseAnnotation | None = None  # the reader's labels, shapes and chest box; None: not annotated
    # the recogniser's words when the reader corrected the transcript; ``words`` then holds the corrected words,
    # which ``sentences`` and ``heatmaps`` are derived from
    recognised_words: Words | None = None
    correction: TranscriptCorrection | None = None  # the edits that made ``words`` from ``recognised_words``
    # what the reader found unreadable in this case and left out rather than guess (a half-written annotation
    # revision, ...): one line each; validate_case reports them
    read_problems: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return float(self.t_end - self.t_start)

    def sentence_heatmap(self, i: int) -> np.ndarray | None:
        """Sentence i's heatmap (H_hm, W_hm) summing to 1, or None for the empty marker."""
        k = int(self.sentences.heatmap_index[i])
        return None if k < 0 else self.heatmaps[k]
