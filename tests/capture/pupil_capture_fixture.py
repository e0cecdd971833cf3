"""A stand-in for Pupil Capture's network API, run in its own process: ``python pupil_capture_fixture.py SPEC.json``.

Written from pupil-labs/pupil (pupil_src/shared_modules):
- Pupil Remote (``network_api/controller/pupil_remote_controller.py``): a REP socket answering ``SUB_PORT`` (the
  IPC backbone's SUB port), ``PUB_PORT``, ``t`` (``repr`` of Pupil time), ``v``; anything else "Unknown command.".
- the IPC backbone's messages (``zmq_tools.Msg_Streamer.send``): topic, ``msgpack.packb(payload,
  use_bin_type=True)``, then the ``__raw_data__`` parts.
- gaze (``gaze_mapping/gazer_3d/gazer_headset.py``): topic ``gaze.3d.01.``, ``norm_pos`` in the world camera
  image with the origin bottom-left (``normalize(..., flip_y=True)``), ``confidence``, ``timestamp`` (Pupil time),
  ``base_data``, ``gaze_point_3d``.
- the Frame Publisher (``network_api/controller/frame_publisher_controller.py``): topic ``frame.world``, ``width``,
  ``height``, ``index``, ``timestamp``, ``format`` ("gray": ``frame.gray``, H x W bytes) and the image as one raw
  part.

Pupil time is the LSL clock + ``pupil_minus_lsl_s`` (Pupil's own origin, as Capture's is). The scene camera
(1280 x 720, 30 Hz) sees the screen (1920 x 1080: a radiograph-like field and, unless ``markers`` is false, the
four tag36h11 markers where ``radgaze record --scene-markers`` draws them on a full-screen viewer) through a
homography that moves with the head (a smooth 2 s loop); gaze at 120 Hz looks at known screen points, its
norm_pos is that point seen through the head's pose at the gaze's own time. The truth (LSL time, screen px,
valid) is written before READY.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pylsl
import zmq

from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.gazemath.surface import apply_homography, homography
from radgaze.capture.live.gaze.pupil_bridge import overlay_markers
from radgaze.capture.live.scene_markers import OVERLAY_CELL_PX, MarkerDetector

DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
FRAME_W, FRAME_H, FRAME_HZ, GAZE_HZ = 1280, 720, 30.0, 120.0
HEAD_PERIOD_S = 2.0
SCREEN_CORNERS = np.array([[0, 0], [1920, 0], [1920, 1080], [0, 1080]], float)
# Pupil Core's world camera ("Pupil Cam1 ID2") at 1280 x 720: Pupil Labs' default intrinsics (pupil-labs/pupil
# camera_models.py default_intrinsics; radial model, OpenCV's rational distortion k1 k2 p1 p2 k3 k4 k5 k6)
PUPIL_CAM1_ID2_720P = {
    "camera_matrix": [[794.3311439869655, 0.0, 633.0104437728625], [0.0, 793.5290139393004, 397.36927353414865],
                      [0.0, 0.0, 1.0]],
    "dist_coefs": [[-0.3758628065070806, 0.1643326166951343, 0.00012182540692089567, 0.00013422608638039466,
                    0.03343691733865076, 0.08235235770849726, -0.08225804883227375, 0.14463365333602152]],
    "resolution": [FRAME_W, FRAME_H],
    "cam_type": "radial",
}  # fmt: skip


class Lens:
    """The camera's distortion, written here from the model's formula (OpenCV's rational model, as Pupil's
    Radial_Dist_Camera uses it): ideal px -> recorded px in closed form; recorded px -> ideal by Newton steps
    on that formula (to render the frames)."""

    def __init__(self, intrinsics: dict) -> None:
        self.k = np.asarray(intrinsics["camera_matrix"], float)
        self.d = np.asarray(intrinsics["dist_coefs"], float).ravel()

    def _distort_plane(self, x, y):
        k1, k2, p1, p2, k3, k4, k5, k6 = self.d
        r2 = x * x + y * y
        f = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
        return x * f + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * f + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y

    def distort(self, x_px, y_px):
        k = self.k
        xd, yd = self._distort_plane((x_px - k[0, 2]) / k[0, 0], (y_px - k[1, 2]) / k[1, 1])
        return xd * k[0, 0] + k[0, 2], yd * k[1, 1] + k[1, 2]

    def ideal(self, x_px, y_px, steps: int = 8, h: float = 1e-6):
        k = self.k
        tx, ty = (x_px - k[0, 2]) / k[0, 0], (y_px - k[1, 2]) / k[1, 1]
        x, y = tx.copy(), ty.copy()
        for _ in range(steps):  # Newton on F(x, y) = distort(x, y) - target, numeric Jacobian
            fx, fy = self._distort_plane(x, y)
            ax, ay = self._distort_plane(x + h, y)
            bx, by = self._distort_plane(x, y + h)
            j11, j21, j12, j22 = (ax - fx) / h, (ay - fy) / h, (bx - fx) / h, (by - fy) / h
            det = j11 * j22 - j12 * j21
            rx, ry = fx - tx, fy - ty
            x, y = x - (j22 * rx - j12 * ry) / det, y - (j11 * ry - j21 * rx) / det
        return x * k[0, 0] + k[0, 2], y * k[1, 1] + k[1, 2]


def head_pose(t: float) -> np.ndarray:
    """screen px -> scene px at time t: the screen ~620 px wide in the frame, tilted, moving with the head."""
    phase = 2 * np.pi * t / HEAD_PERIOD_S
    dx, dy, tilt = 45 * np.sin(phase), 25 * np.sin(2 * phase + 0.5), 12 * np.cos(phase)
    scene = np.array([[330, 160 - tilt], [950, 180 + tilt], [930, 530 - tilt], [345, 515 + tilt]], float)
    return homography(SCREEN_CORNERS, scene + [dx, dy])


def screen_image(with_markers: bool, cell_px: int = OVERLAY_CELL_PX, viewer=None) -> np.ndarray:
    """The screen: a radiograph-like field and the markers as `radgaze record --scene-markers` draws them at the
    corners of its viewer (``viewer`` = x, y, w, h in screen px; None: filling the screen), cells of ``cell_px``."""
    yy, xx = np.mgrid[0 : DISPLAY.screen_h_px, 0 : DISPLAY.screen_w_px]
    screen = (90 + 60 * np.exp(-(((xx - 960) / 500) ** 2 + ((yy - 540) / 350) ** 2))).astype(np.uint8)
    if with_markers:
        detector = MarkerDetector()
        offset, _ = detector.black_square_px(cell_px)
        for m in overlay_markers(DISPLAY, viewer, cell_px=cell_px):
            x0, y0 = (m.corners_px[3] - offset).astype(
                int
            )  # the drawn marker's top-left, its white ring included
            tag = detector.render(m.tag_id, cell_px)
            screen[y0 : y0 + tag.shape[0], x0 : x0 + tag.shape[1]] = tag
    return screen


def see(
    screen: np.ndarray, h: np.ndarray, rng, ideal=None, size: tuple[int, int] = (FRAME_W, FRAME_H)
) -> np.ndarray:
    """The grey scene frame (``size`` = W, H px): pixels inside the screen's outline look it up (bilinear), the room
    is darker. ``ideal``: (x, y) ideal px of every recorded pixel centre (a distorting lens); None: no distortion."""
    frame = np.full((size[1], size[0]), 40.0, np.float32)
    if ideal is None:
        outline = np.stack(apply_homography(h, SCREEN_CORNERS[:, 0], SCREEN_CORNERS[:, 1]), 1)
        (x0, y0), (x1, y1) = np.floor(outline.min(0)).astype(int), np.ceil(outline.max(0)).astype(int)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        xx, yy = xx + 0.5, yy + 0.5
    else:
        (x0, y0), (x1, y1) = (0, 0), size
        xx, yy = ideal
    sx, sy = apply_homography(np.linalg.inv(h), xx, yy)
    sx, sy = sx - 0.5, sy - 0.5
    inside = (sx >= 0) & (sy >= 0) & (sx < screen.shape[1] - 1) & (sy < screen.shape[0] - 1)
    ix, iy = np.clip(sx.astype(int), 0, screen.shape[1] - 2), np.clip(sy.astype(int), 0, screen.shape[0] - 2)
    fx, fy = np.clip(sx - ix, 0, 1), np.clip(sy - iy, 0, 1)
    s = screen.astype(np.float32)
    val = (s[iy, ix] * (1 - fx) * (1 - fy) + s[iy, ix + 1] * fx * (1 - fy)
           + s[iy + 1, ix] * (1 - fx) * fy + s[iy + 1, ix + 1] * fx * fy)  # fmt: skip
    frame[y0:y1, x0:x1] = np.where(inside, val, 40.0)
    frame += rng.normal(0, 2.0, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def encode(grey: np.ndarray, fmt: str) -> bytes:
    """A frame as the Frame Publisher sends it: gray = frame.gray bytes; bgr = frame.bgr (H x W x 3 bytes);
    jpeg = the camera's MJPEG buffer (here encoded from the grey image, as a colour JPEG)."""
    if fmt == "gray":
        return grey.tobytes()
    if fmt == "bgr":
        return np.repeat(grey[:, :, None], 3, axis=2).tobytes()
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def gaze_plan(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Screen points (n, 2): fixations of 200-400 ms at random places, and confidences (5 % below 0.6)."""
    points, k = np.zeros((n, 2)), 0
    while k < n:
        m = int(rng.integers(24, 48))
        points[k : k + m] = rng.uniform([150, 120], [1770, 960]) + rng.normal(0, 3, (min(m, n - k), 2))
        k += m
    confidence = np.where(rng.random(n) < 0.05, 0.3, 0.95)
    return points, confidence


def send(pub: zmq.Socket, payload: dict, raw: bytes | None = None) -> None:
    """zmq_tools.Msg_Streamer.send: topic, msgpack payload, raw parts."""
    parts = [payload["topic"].encode(), msgpack.packb(payload, use_bin_type=True)]
    pub.send_multipart(parts + ([raw] if raw is not None else []))


def answer(rep: zmq.Socket, sub_port: int, pupil_time) -> None:
    while rep.poll(0):
        msg = rep.recv_string()
        if msg == "SUB_PORT":
            reply = str(sub_port)
        elif msg == "t":
            reply = repr(pupil_time(pylsl.local_clock()))
        elif msg == "v":
            reply = "3.5.1"
        else:
            reply = "Unknown command."
        rep.send_string(reply)


def surface_rect(markers) -> tuple[float, float, float, float]:
    """The surface Pupil Capture's Surface Tracker defines when one is added with the markers in view: the
    bounding quadrangle of all marker vertices (surface_tracker/surface.py ``_update_definition``); for markers at
    the corners of an upright screen, (left, top, right, bottom) of their corners."""
    corners = np.concatenate([m.corners_px for m in markers])
    return (*corners.min(axis=0), *corners.max(axis=0))


class PupilCapture:
    """The publishing side: frames (Frame Publisher), gaze, surface events (Surface Tracker), on Pupil time."""

    def __init__(self, spec: dict, pub: zmq.Socket, t0: float, rng) -> None:
        self.spec, self.pub, self.t0 = spec, pub, t0
        self.offset = float(spec.get("pupil_minus_lsl_s", 1000.0))
        # Pupil Capture on another machine: its clock runs at its own rate (drift_ppm) from READY on
        self.drift, self.t_ready = float(spec.get("drift_ppm", 0.0)) * 1e-6, pylsl.local_clock()
        markers = spec.get("markers", True)
        poses = int(HEAD_PERIOD_S * FRAME_HZ)
        cell_px = int(spec.get("cell_px", OVERLAY_CELL_PX))
        viewer = tuple(spec["viewer"]) if spec.get("viewer") else None  # the record window's image view
        screen = screen_image(markers, cell_px, viewer)
        self.lens, ideal = None, None
        if spec.get("intrinsics"):  # a distorting lens; its intrinsics written as Pupil Capture saves them
            Path(spec["intrinsics"]).write_bytes(
                msgpack.packb({"version": 1, "(1280, 720)": PUPIL_CAM1_ID2_720P})
            )
            self.lens = Lens(PUPIL_CAM1_ID2_720P)
            yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float64)
            ideal = self.lens.ideal(xx + 0.5, yy + 0.5)
        self.format = spec.get("format", "gray")  # the Frame Publisher's format (its default is jpeg)
        self.frames = (
            [encode(see(screen, head_pose(k / FRAME_HZ), rng, ideal), self.format) for k in range(poses)]
            if spec.get("frames", True)
            else []
        )
        self.surface = (
            spec.get("surface") if markers else None
        )  # no markers in view: the surface is never found
        self.rect = surface_rect(overlay_markers(DISPLAY, viewer, cell_px=cell_px))
        self.k_frame, self.since_frame = 0, []  # gaze since the last world frame (Pupil's events["gaze"])

    def pupil_time(self, t_lsl: float) -> float:
        return t_lsl + self.offset + self.drift * (t_lsl - self.t_ready)

    def pose(self, t: float) -> np.ndarray:
        return head_pose((t - self.t0) % HEAD_PERIOD_S)

    def world_frames(self, now: float) -> None:
        while self.k_frame < int((now - self.t0) * FRAME_HZ) + 1 and now >= self.t0:
            t = self.t0 + self.k_frame / FRAME_HZ  # the frame's capture time
            if self.frames:
                raw = self.frames[self.k_frame % len(self.frames)]
                send(self.pub, {"topic": "frame.world", "width": FRAME_W, "height": FRAME_H, "index": self.k_frame,
                                "timestamp": self.pupil_time(t), "format": self.format}, raw)  # fmt: skip
            if self.surface:
                self.surface_event(t)
            self.since_frame = []
            self.k_frame += 1

    def surface_event(self, t: float) -> None:
        """surface_tracker.py ``_create_surface_events`` / surface.py ``map_gaze_and_fixation_events``: this
        frame's gaze through the image-to-surface homography of the surface as located in this frame."""
        left, top, right, bottom = self.rect
        on_screen = np.array([[left, bottom], [right, bottom], [right, top], [left, top]], float)
        in_frame = np.stack(apply_homography(self.pose(t), on_screen[:, 0], on_screen[:, 1]), 1)
        img_to_surf = homography(in_frame, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float))
        mapped = []
        for g in self.since_frame:
            sx, sy = (
                g["norm_pos"][0] * FRAME_W,
                (1.0 - g["norm_pos"][1]) * FRAME_H,
            )  # denormalize(flip_y=True)
            u, v = (float(c) for c in apply_homography(img_to_surf, sx, sy))
            mapped.append({"topic": f"{g['topic']}_on_surface", "norm_pos": [u, v], "confidence": g["confidence"],
                           "on_surf": bool(0 <= u <= 1 and 0 <= v <= 1), "base_data": [g["topic"], g["timestamp"]],
                           "timestamp": g["timestamp"]})  # fmt: skip
        name = self.surface
        send(self.pub, {"topic": f"surfaces.{name}", "name": name, "img_to_surf_trans": img_to_surf.tolist(),
                        "surf_to_img_trans": np.linalg.inv(img_to_surf).tolist(), "gaze_on_surfaces": mapped,
                        "fixations_on_surfaces": [], "timestamp": self.pupil_time(t)})  # fmt: skip

    def gaze(self, t: float, point: np.ndarray, confidence: float) -> None:
        sx, sy = apply_homography(self.pose(t), point[0], point[1])
        if self.lens is not None:  # Pupil projects gaze with the lens's distortion (projectPoints)
            sx, sy = self.lens.distort(sx, sy)
        norm = [float(sx) / FRAME_W, 1.0 - float(sy) / FRAME_H]  # Pupil's normalize(flip_y=True)
        base = [
            {"topic": f"pupil.{i}.3d", "id": i, "timestamp": self.pupil_time(t), "confidence": 0.95}
            for i in (0, 1)
        ]
        datum = {"topic": "gaze.3d.01.", "norm_pos": norm, "confidence": confidence, "timestamp": self.pupil_time(t),
                 "base_data": base, "gaze_point_3d": [0.0, 0.0, 650.0]}  # fmt: skip
        send(self.pub, datum)
        self.since_frame.append(datum)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    rng = np.random.default_rng(spec.get("seed", 0))
    ctx = zmq.Context()
    rep, pub = ctx.socket(zmq.REP), ctx.socket(zmq.PUB)
    remote_port = rep.bind_to_random_port("tcp://127.0.0.1")
    sub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    t_ready = pylsl.local_clock()
    capture = PupilCapture(spec, pub, t_ready, rng)
    n_gaze = int(float(spec["duration_s"]) * GAZE_HZ)
    points, confidence = gaze_plan(n_gaze, rng)
    capture.t0 = t0 = pylsl.local_clock() + 1.0  # data start 1 s after READY (the bridge connects meanwhile)
    t_gaze = t0 + np.arange(n_gaze) / GAZE_HZ
    np.savez(spec["truth"], t=t_gaze, x=points[:, 0], y=points[:, 1], valid=confidence >= 0.6)
    print("READY", remote_port, flush=True)
    k = 0
    while k < n_gaze:
        answer(rep, sub_port, capture.pupil_time)
        now = pylsl.local_clock()
        while k < n_gaze and t_gaze[k] <= now:
            capture.world_frames(t_gaze[k])  # a frame captured before this gaze sample goes out first
            capture.gaze(t_gaze[k], points[k], float(confidence[k]))
            k += 1
        capture.world_frames(now)
        time.sleep(0.002)
    deadline = time.monotonic() + float(spec.get("linger_s", 2.0))
    while time.monotonic() < deadline:  # keep answering Pupil Remote a little after the data end
        answer(rep, sub_port, capture.pupil_time)
        time.sleep(0.01)
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main(sys.argv[1])
