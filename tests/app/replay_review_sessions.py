"""Small hand-built session files for the replay/review/retrain tests (no dependency on radgaze.capture.synth).

Each case: a 16-bit PNG (bright body, two dark lungs, a bright 'heart'), gaze at 60 Hz dwelling on one target
per sentence, I-VT-like fixations at those dwells, dictated words 0.4 s apart, one sentence per target with a
Gaussian heatmap of its fixations (sigma 12 px), and optionally a 16 kHz tone as the recorded audio. The
'imported' variant has no raw gaze and no audio (as REFLACX / EGD-CXR imports).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from radgaze.capture.base.records import (
    FIXATION_DTYPE,
    GAZE_DTYPE,
    GAZE_ON_IMAGE,
    GAZE_VALID,
    VIEW_CASE,
    VIEW_DTYPE,
    Audio,
    CaseAnnotation,
    CaseRecord,
    DisplayGeometry,
    ImageRef,
    LabelChoice,
    Sentences,
    Shape,
    Words,
)
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.store.writer import SessionWriter

T0 = 1000.0  # LSL s of the first case
IMAGE_W, IMAGE_H = 400, 480
GAZE_HZ = 60.0
WORD_S = 0.4
SENTENCES = [
    ("the heart is enlarged.", (200.0, 300.0)),
    ("there is a left pleural effusion.", (300.0, 380.0)),
    ("the right lung is clear.", (110.0, 180.0)),
]
SIGMA_PX = 12.0
AUDIO_HZ = 16000


def phantom(w: int = IMAGE_W, h: int = IMAGE_H) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.full((h, w), 0.15)
    body = ((xx - w / 2) / (0.45 * w)) ** 2 + ((yy - h / 2) / (0.48 * h)) ** 2 < 1
    img[body] = 0.7
    for cx in (0.3 * w, 0.7 * w):
        lung = ((xx - cx) / (0.16 * w)) ** 2 + ((yy - 0.45 * h) / (0.3 * h)) ** 2 < 1
        img[lung] = 0.3
    heart = ((xx - 0.52 * w) / (0.13 * w)) ** 2 + ((yy - 0.62 * h) / (0.12 * h)) ** 2 < 1
    img[heart] = 0.85
    return (img * 60000).astype(np.uint16)


def gaussian_heatmap(
    xs: np.ndarray, ys: np.ndarray, weights: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    hm = np.zeros(shape)
    for x, y, w in zip(xs, ys, weights):
        hm += w * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * SIGMA_PX**2))
    return (hm / hm.sum()).astype(np.float32)


def make_case(case_id: str, t0: float, *, imported: bool = False, shift_px: float = 0.0) -> CaseRecord:
    rng = np.random.default_rng(abs(hash(case_id)) % (2**32))
    display = DisplayGeometry()
    scale, off_x, off_y = 3.0, 168.0, 304.0  # image -> screen
    view = np.zeros(1, VIEW_DTYPE)
    view[0] = (t0, VIEW_CASE, scale, off_x, off_y, 30000.0, 60000.0, 0)
    words_t0, words_t1, words = [], [], []
    s_t0, s_t1, ws, we, texts = [], [], [], [], []
    fix_rows = []
    t = t0 + 1.0
    for text, (x, y) in SENTENCES:
        x, y = x + shift_px, y
        # three fixations on the target before and while the sentence is said
        for k in range(3):
            fs = t + k * 0.5
            fx, fy = x + rng.normal(0, 4), y + rng.normal(0, 4)
            fix_rows.append((fs, fs + 0.4, fx, fy, fx * scale + off_x, fy * scale + off_y, 40.0))
        start = t + 0.6
        tokens = text.split()
        for j, word in enumerate(tokens):
            words_t0.append(start + j * WORD_S)
            words_t1.append(start + j * WORD_S + 0.3)
            words.append(word)
        s_t0.append(start)
        s_t1.append(words_t1[-1])
        ws.append(start - 1.0)
        we.append(words_t1[-1])
        texts.append(text)
        t = words_t1[-1] + 0.5
    t_end = t + 0.5
    fixations = np.array(fix_rows, dtype=FIXATION_DTYPE)
    h_hm, w_hm, hm_scale = heatmap_grid(IMAGE_W, IMAGE_H)
    heatmaps, index, n_fix = [], [], []
    for a, b in zip(ws, we):
        sel = fixations[(fixations["t_end"] >= a) & (fixations["t_start"] <= b)]
        n_fix.append(sel.size)
        if sel.size == 0:
            index.append(-1)
            continue
        index.append(len(heatmaps))
        heatmaps.append(
            gaussian_heatmap(
                sel["x_img_px"] / hm_scale,
                sel["y_img_px"] / hm_scale,
                sel["t_end"] - sel["t_start"],
                (h_hm, w_hm),
            )
        )
    gaze = np.zeros(0, GAZE_DTYPE)
    audio = None
    if not imported:
        tg = np.arange(t0, t_end, 1.0 / GAZE_HZ)
        gaze = np.zeros(tg.size, GAZE_DTYPE)
        gaze["t_lsl"] = tg
        # between fixations the gaze moves linearly to the next one (a crude saccade)
        centres_t = np.concatenate([[t0], (fixations["t_start"] + fixations["t_end"]) / 2, [t_end]])
        cx = np.concatenate([[IMAGE_W / 2], fixations["x_img_px"], [IMAGE_W / 2]])
        cy = np.concatenate([[IMAGE_H / 2], fixations["y_img_px"], [IMAGE_H / 2]])
        gaze["x_img_px"] = np.interp(tg, centres_t, cx) + rng.normal(0, 1.5, tg.size)
        gaze["y_img_px"] = np.interp(tg, centres_t, cy) + rng.normal(0, 1.5, tg.size)
        gaze["x_screen_px"] = gaze["x_img_px"] * scale + off_x
        gaze["y_screen_px"] = gaze["y_img_px"] * scale + off_y
        gaze["pupil"] = 3.5
        gaze["flags"] = GAZE_VALID | GAZE_ON_IMAGE
        n = int((t_end - t0) * AUDIO_HZ)
        tone = (8000 * np.sin(2 * np.pi * 220.0 * np.arange(n) / AUDIO_HZ)).astype(np.int16)
        audio = Audio(tone, AUDIO_HZ, np.array([t0]), np.array([0], np.int64))
    return CaseRecord(
        case_id=case_id,
        image=ImageRef(f"{case_id}.png", "0" * 64, IMAGE_W, IMAGE_H),
        display=display,
        t_start=t0,
        t_end=t_end,
        gaze=gaze,
        fixations=fixations,
        view_events=view,
        words=Words(np.array(words_t0), np.array(words_t1), words, np.ones(len(words), np.float32)),
        sentences=Sentences(
            np.array(s_t0),
            np.array(s_t1),
            np.array(ws),
            np.array(we),
            texts,
            np.array(index, np.int32),
            np.array(n_fix, np.int32),
        ),
        heatmaps=np.stack(heatmaps).astype(np.float32),
        heatmap_scale=hm_scale,
        audio=audio,
        labels=["cardiomegaly", "pleural_effusion"],
    )


def reader_annotation() -> CaseAnnotation:
    """What a reader annotated on each case: the enlarged heart (sentence 1's target) and the effusion
    (sentence 2's), in REFLACX's labels, and the chest box."""
    return CaseAnnotation(
        labels=[LabelChoice("Enlarged cardiac silhouette", 5), LabelChoice("Pleural abnormality", 4)],
        shapes=[Shape("ellipse", 165.0, 265.0, 235.0, 335.0, ("Enlarged cardiac silhouette",), 5),
                Shape("ellipse", 275.0, 350.0, 345.0, 410.0, ("Pleural abnormality",), 4)],
        chest_box=(40.0, 40.0, 360.0, 440.0),
        confirmed_steps=["dictate", "labels", "shapes", "chest_box"],
        label_set="reflacx", protocol="reflacx",
    )  # fmt: skip


def stamp_image_hash(rec, folder: Path) -> None:
    """Give ``rec`` the sha256 of the image file written for it (readers verify it, issue 24)."""
    import dataclasses
    import hashlib

    digest = hashlib.sha256((folder / rec.image.path).read_bytes()).hexdigest()
    rec.image = dataclasses.replace(rec.image, sha256=digest)


def write_session(
    path: Path, n_cases: int = 2, *, imported: bool = False, prefix: str = "case", annotated: bool = False
) -> Path:
    """A session file with ``n_cases`` cases and their PNGs beside it (``annotated``: each with
    :func:`reader_annotation`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = phantom()
    with SessionWriter(path, reader_id="test-reader", provenance={"source": "test"}) as w:
        t = T0
        for i in range(n_cases):
            rec = make_case(f"{prefix}{i}", t, imported=imported, shift_px=10.0 * i)
            rec.annotation = reader_annotation() if annotated else None
            Image.fromarray(img).save(path.parent / rec.image.path)
            stamp_image_hash(rec, path.parent)
            w.write_case(rec)
            t = rec.t_end + 2.0
    return path
