"""Replay's maths and exports (Qt-free): the reader's view, the whole-case heatmap, REFLACX-style CSVs,
sentence heatmap PNGs and the replay video.

* :func:`reader_transform` — the recorded view rows are image -> screen transforms of the reader's display
  (:mod:`radgaze.capture.gazemath.geometry`); replay shows that display fitted into its own canvas, so the
  reader's zoom, pan and placement look as they did (a region the reader never saw stays off the canvas).
* ``fixations.csv`` and ``timestamps_transcription.csv`` are written by the REFLACX exporter's writers
  (:func:`radgaze.capture.exporters.reflacx.write_fixations_csv`), so replay's files and ``radgaze export
  reflacx``'s are the same bytes: REFLACX's conventions (times in s from the audio start, window as a fraction
  of the stored range, pupil from the raw sample, image px). REFLACX has no sentence file; ``sentences.csv``
  uses the same naming (timestamp_start_sentence, ...) on the same clock.
* The video (H.264 in MP4 through PyAV, FFmpeg's maintained Python binding) draws each frame with Pillow: the
  windowed image, the part the reader had on screen (a frame when zoomed), the fixation trail numbered and
  sized by duration, the gaze point, and the transcript with the word being said highlighted.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.app.replay_frame import Frame, frame_at
from radgaze.capture.base.records import CaseRecord
from radgaze.capture.exporters.reflacx import time_origin, write_fixations_csv, write_transcription_csv

SENTENCE_COLUMNS = (
    "sentence_number",
    "sentence",
    "timestamp_start_sentence",
    "timestamp_end_sentence",
    "timestamp_start_gaze_window",
    "timestamp_end_gaze_window",
    "n_fixations",
    "heatmap_png",
)
# Fixation markers: the disc's diameter grows with the square root of the duration (area ~ duration), as
# scanpath plots usually draw them; 0.25 s -> 18 px on screen.
FIXATION_DIAMETER_PX_AT_QUARTER_S = 18.0
FIXATION_DIAMETER_MIN_PX, FIXATION_DIAMETER_MAX_PX = 6.0, 60.0


# ------------------------------------------------------------------------------------------ view
@dataclass(frozen=True)
class ReaderView:
    """The replay canvas transform (image -> canvas px) and the window/invert the reader had."""

    scale: float
    offset_x: float
    offset_y: float
    window: tuple[float, float]
    invert: bool


def reader_transform(
    view_row: np.void | np.ndarray, screen_wh_px: tuple[int, int], canvas_wh_px: tuple[float, float]
) -> ReaderView:
    """The reader's view on the replay canvas: the recorded image -> screen transform, followed by the
    whole reader display fitted (aspect kept, centred) into the canvas.

    ``view_row`` is a VIEW_DTYPE row (screen px per image px, offsets in screen px)."""
    sw, sh = float(screen_wh_px[0]), float(screen_wh_px[1])
    cw, ch = float(canvas_wh_px[0]), float(canvas_wh_px[1])
    if sw <= 0 or sh <= 0 or cw <= 0 or ch <= 0:
        raise ValueError(f"expected positive screen and canvas sizes, got {screen_wh_px} and {canvas_wh_px}")
    k = min(cw / sw, ch / sh)  # canvas px per screen px
    ox, oy = (cw - sw * k) / 2.0, (ch - sh * k) / 2.0
    return ReaderView(
        scale=float(view_row["scale"]) * k,
        offset_x=float(view_row["offset_x"]) * k + ox,
        offset_y=float(view_row["offset_y"]) * k + oy,
        window=(float(view_row["window_center"]), float(view_row["window_width"])),
        invert=bool(view_row["invert"]),
    )


def fixation_diameters_px(dur_s: np.ndarray) -> np.ndarray:
    """Screen diameters of fixation discs: area proportional to duration, clipped to a readable range."""
    d = FIXATION_DIAMETER_PX_AT_QUARTER_S * np.sqrt(np.maximum(np.asarray(dur_s, np.float64), 0.0) / 0.25)
    return np.clip(d, FIXATION_DIAMETER_MIN_PX, FIXATION_DIAMETER_MAX_PX)


# ------------------------------------------------------------------------------------------ heatmaps
def case_heatmap(record: CaseRecord) -> np.ndarray | None:
    """The whole reading's heatmap on the case's heatmap grid: every fixation, REFLACX's convention (1 deg
    sigma from each fixation's pixels per degree, duration-weighted, sums to 1), or None without fixations."""
    from radgaze.capture.gazemath.heatmap import SIGMA_DEG, render_heatmap

    fx = record.fixations
    if fx.size == 0:
        return None
    if record.heatmaps.ndim == 3 and record.heatmaps.shape[0] > 0:
        h, w = record.heatmaps.shape[1:]
        grid = (int(h), int(w), float(record.heatmap_scale))
    else:
        from radgaze.capture.gazemath.heatmap import heatmap_grid

        grid = heatmap_grid(max(record.image.width, 1), max(record.image.height, 1))
    ppd = fx["ppd_img"].astype(np.float64)
    sigma = np.where(np.isfinite(ppd) & (ppd > 0), ppd * SIGMA_DEG, 20.0)
    return render_heatmap(fx["x_img_px"], fx["y_img_px"], fx["t_end"] - fx["t_start"], sigma, grid=grid)


def windowed_u8(pixels: np.ndarray, window: tuple[float, float], invert: bool = False) -> np.ndarray:
    """REFLACX windowing clip((x - level) / width + 0.5, 0, 1) as uint8 (inverted when asked)."""
    c, w = window
    u8 = (np.clip((pixels.astype(np.float32) - c) / max(w, 1e-12) + 0.5, 0.0, 1.0) * 255).astype(np.uint8)
    return 255 - u8 if invert else u8


def heatmap_overlay_rgb(
    image_u8: np.ndarray, heatmap: np.ndarray, colormap: str = "inferno", opacity: float = 0.6
) -> np.ndarray:
    """(H, W, 3) uint8: the image under a heatmap (resized to the image), alpha rising over the lowest 40 %
    of the map's range as the viewer's overlay."""
    from matplotlib import colormaps
    from PIL import Image

    h, w = image_u8.shape
    hm = np.asarray(heatmap, np.float32)
    top = float(hm.max()) if hm.size else 0.0
    v = hm / top if top > 0 else np.zeros_like(hm)
    v = np.asarray(Image.fromarray(v).resize((w, h), Image.Resampling.BILINEAR))
    rgba = colormaps[colormap](np.clip(v, 0.0, 1.0))
    a = (np.clip(v / 0.4, 0.0, 1.0) * opacity)[..., None]
    rgb = image_u8[..., None].astype(np.float32) / 255.0 * (1 - a) + rgba[..., :3] * a
    return (rgb * 255).round().astype(np.uint8)


# ------------------------------------------------------------------------------------------ CSV
def _rel(t: np.ndarray | float, t0: float) -> np.ndarray:
    return np.asarray(t, np.float64) - t0


def _fmt(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(float(v)) else f"{float(v):.6g}"
    return str(v)


def _write(path: Path, columns: tuple[str, ...], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        w.writerows([[_fmt(v) for v in row] for row in rows])
    return path


def export_case_tables(record: CaseRecord, folder: str | os.PathLike) -> dict[str, Path]:
    """fixations.csv and timestamps_transcription.csv of one case into ``folder``, written by the REFLACX
    exporter's writers (the files ``radgaze export reflacx`` writes, byte for byte), and sentences.csv on the
    same clock (s from the audio start)."""
    out = Path(folder)
    t0 = time_origin(record)
    s = record.sentences
    sentences = []
    for i in range(len(s)):
        png = f"sentence_{i + 1:02d}_heatmap.png" if int(s.heatmap_index[i]) >= 0 else ""
        sentences.append(
            [
                i + 1,
                s.text[i],
                *(float(_rel(a[i], t0)) for a in (s.t_start, s.t_end, s.window_start, s.window_end)),
                int(s.n_fixations[i]),
                png,
            ]
        )
    out.mkdir(parents=True, exist_ok=True)
    return {
        "fixations": write_fixations_csv(record, out / "fixations.csv"),
        "words": write_transcription_csv(record, out / "timestamps_transcription.csv"),
        "sentences": _write(out / "sentences.csv", SENTENCE_COLUMNS, sentences),
    }


def export_heatmap_pngs(
    record: CaseRecord,
    pixels: np.ndarray,
    window: tuple[float, float],
    folder: str | os.PathLike,
    *,
    colormap: str = "inferno",
) -> list[Path]:
    """Each sentence's heatmap over the windowed image as ``sentence_NN_heatmap.png`` (NN from 1), and the
    whole case as ``case_heatmap.png``; sentences without fixations get no file."""
    from PIL import Image

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    base = windowed_u8(pixels, window)
    paths = []
    maps = [
        (f"sentence_{i + 1:02d}_heatmap.png", record.sentence_heatmap(i))
        for i in range(len(record.sentences))
    ]
    maps.append(("case_heatmap.png", case_heatmap(record)))
    for name, hm in maps:
        if hm is None:
            continue
        Image.fromarray(heatmap_overlay_rgb(base, hm, colormap)).save(out / name)
        paths.append(out / name)
    return paths


# ------------------------------------------------------------------------------------------ video
@dataclass(frozen=True)
class VideoSettings:
    fps: float = 15.0
    height_px: int = 720  # frame height; the width follows the image's aspect plus nothing else
    trail_s: float = 3.0
    speed: float = 1.0  # case seconds per video second
    codec: str = "libx264"


def frame_times(record: CaseRecord, settings: VideoSettings) -> np.ndarray:
    """LSL times of the frames: the whole case at ``speed``, ``fps`` frames per video second."""
    step = settings.speed / settings.fps
    n = max(1, int(math.floor(record.duration_s / step)) + 1)
    return record.t_start + np.arange(n) * step


def _font(size_px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


class FrameRenderer:
    """Draws replay frames (H, W, 3) uint8 for the video with Pillow."""

    def __init__(
        self,
        record: CaseRecord,
        pixels: np.ndarray,
        window: tuple[float, float],
        settings: VideoSettings,
    ) -> None:
        from PIL import Image

        self.record, self.settings = record, settings
        h_img, w_img = pixels.shape
        self.text_h = max(48, settings.height_px // 9)
        self.img_h = settings.height_px - self.text_h
        self.k = self.img_h / h_img  # frame px per image px
        self.img_w = max(2, int(round(w_img * self.k)))
        # at least 4:3, so the transcript line has room beside a portrait film; even sizes for yuv420p
        self.w = int(round(max(self.img_w, settings.height_px * 4 / 3) / 2)) * 2
        self.h = int(settings.height_px // 2) * 2
        self.x0 = (self.w - self.img_w) // 2  # the image is centred
        self.window = window
        self._pixels = pixels
        self._base_cache: tuple[tuple[float, float, bool], Image.Image] | None = None
        self.font_px = max(12, self.text_h // 3)
        self.font = _font(self.font_px)
        self.small = _font(11)

    def _base(self, window: tuple[float, float], invert: bool):
        from PIL import Image

        key = (window[0], window[1], invert)
        if self._base_cache is None or self._base_cache[0] != key:
            u8 = windowed_u8(self._pixels, window, invert)
            img = (
                Image.fromarray(u8).resize((self.img_w, self.img_h), Image.Resampling.BILINEAR).convert("RGB")
            )
            self._base_cache = (key, img)
        return self._base_cache[1]

    def render(self, t_lsl: float) -> np.ndarray:
        from PIL import Image, ImageDraw

        rec = self.record
        f = frame_at(rec, t_lsl, self.settings.trail_s)  # what the replay window draws at this time
        window, invert = self.window, False
        if f.view >= 0:
            v = rec.view_events[f.view]
            window, invert = (float(v["window_center"]), float(v["window_width"])), bool(v["invert"])
        frame = Image.new("RGB", (self.w, self.h), (17, 17, 17))
        frame.paste(self._base(window, invert), (self.x0, 0))
        draw = ImageDraw.Draw(frame)
        if f.view >= 0:
            self._draw_shown(draw, rec.view_events[f.view])
        self._draw_trail(draw, f)
        self._draw_gaze(draw, f)
        self._draw_text(draw, f)
        return np.asarray(frame)

    def _draw_shown(self, draw, v) -> None:
        from radgaze.capture.gazemath.geometry import shown_rect

        x0, y0, x1, y1 = (float(a) * self.k for a in shown_rect(v, self.record.display, *self._wh()))
        if x1 - x0 < self.img_w - 2 or y1 - y0 < self.img_h - 2:  # zoomed in: frame what the reader had
            draw.rectangle((x0 + self.x0, y0, x1 + self.x0 - 1, y1 - 1), outline=(255, 235, 59), width=2)

    def _wh(self) -> tuple[int, int]:
        return self._pixels.shape[1], self._pixels.shape[0]

    def _draw_trail(self, draw, f: Frame) -> None:
        fx = self.record.fixations
        lo = f.trail.start
        pts = [
            (float(fx["x_img_px"][i]) * self.k + self.x0, float(fx["y_img_px"][i]) * self.k)
            for i in range(f.trail.start, f.trail.stop)
        ]
        if len(pts) > 1:
            draw.line(pts, fill=(0, 229, 255), width=2)
        for j, ((x, y), d) in enumerate(zip(pts, fixation_diameters_px(f.trail_dur_s), strict=True)):
            r = float(d) / 2
            current = lo + j == f.fixation
            fill = (255, 64, 129) if current else (0, 229, 255)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=(255, 255, 255))
            draw.text((x + r + 2, y - r - 2), str(lo + j + 1), fill=(255, 255, 255), font=self.small)

    def _draw_gaze(self, draw, f: Frame) -> None:
        if f.gaze_xy_img_px is not None:
            x, y = f.gaze_xy_img_px[0] * self.k + self.x0, f.gaze_xy_img_px[1] * self.k
            draw.ellipse((x - 10, y - 10, x + 10, y + 10), outline=(0, 255, 120), width=2)

    def _draw_text(self, draw, f: Frame) -> None:
        """The bar under the film: the sentence being said, from its first word (wrapped on two lines; a long
        one keeps its newest lines, after "…"), the current word highlighted; the case clock at the right.
        The bar is painted first, so a fixation off the film's bottom edge never covers the words."""
        draw.rectangle((0, self.img_h, self.w, self.h), fill=(17, 17, 17))
        clock = f"{f.t_lsl - self.record.t_start:6.1f} s"
        room = self.w - 24 - draw.textlength(clock, font=self.small)
        lines = subtitle_lines(
            self.record.words.text, f.n_said, lambda t: draw.textlength(t, font=self.font) <= room
        )
        line_px = int(self.font_px * 1.2)
        y = self.img_h + max(2, (self.text_h - line_px * len(lines)) // 2)
        for line in lines:
            x = 8.0
            for i, word in line:
                text = word + " "
                colour = (255, 235, 59) if i == f.word else (224, 224, 224)
                draw.text((x, y), text, fill=colour, font=self.font)
                x += draw.textlength(text, font=self.font)
            y += line_px
        clock_x = self.w - 8 - draw.textlength(clock, font=self.small)
        draw.text((clock_x, self.img_h + 4), clock, fill=(160, 160, 160), font=self.small)


SENTENCE_END = (".", "?", "!")


def subtitle_lines(
    words: list[str], n_said: int, fits: Callable[[str], bool], max_lines: int = 2
) -> list[list[tuple[int, str]]]:
    """The subtitle of a replay frame: the words of the sentence being said (from the word after the last one
    ending a sentence to word ``n_said - 1``) as (index, word) lines that each ``fits``; at most ``max_lines``,
    the newest kept, a line that lost its start led by "…" (index -1)."""
    ends = [j for j in range(n_said - 1) if words[j].endswith(SENTENCE_END)]  # before the newest word
    first = ends[-1] + 1 if ends else 0
    lines: list[list[tuple[int, str]]] = [[]]
    for i in range(first, n_said):
        candidate = " ".join(w for _, w in lines[-1]) + " " + words[i]
        if lines[-1] and not fits(candidate.strip()):
            lines.append([])
        lines[-1].append((i, words[i]))
    if len(lines) > max_lines:
        lines = lines[-max_lines:]
        lines[0] = [(-1, "…"), *lines[0]]
    return [line for line in lines if line]


def export_video(
    record: CaseRecord,
    pixels: np.ndarray,
    window: tuple[float, float],
    path: str | os.PathLike,
    settings: VideoSettings = VideoSettings(),
    progress: Callable[[int, int], bool] | None = None,
) -> Path:
    """Write the replay video (MP4, H.264 via PyAV). ``progress(done, total)`` is called after each frame;
    returning False cancels (the partial file is removed). Returns the path."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency
        raise ImportError("the replay video needs PyAV: pip install av") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    renderer = FrameRenderer(record, pixels, window, settings)
    times = frame_times(record, settings)
    from fractions import Fraction

    cancelled = False
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(settings.codec, rate=Fraction(settings.fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = renderer.w, renderer.h, "yuv420p"
        for n, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(renderer.render(float(t)), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            if progress is not None and progress(n + 1, times.size) is False:
                cancelled = True
                break
        for packet in stream.encode():
            container.mux(packet)
    if cancelled:
        path.unlink(missing_ok=True)
        raise InterruptedError(f"video export cancelled after {n + 1} of {times.size} frames")
    return path
