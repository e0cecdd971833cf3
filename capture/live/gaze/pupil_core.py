"""Pupil Core's network API, read as Pupil Capture serves it (pupil-labs/pupil, ``pupil_src/shared_modules``).

- **Pupil Remote** (``network_api/controller/pupil_remote_controller.py``): a ZMQ REP socket, by default on port
  50020, answering one-part string requests: ``SUB_PORT`` -> the IPC backbone's SUB port, ``t`` -> Pupil time as
  ``repr(float)``, ``v`` -> the version.
- **The IPC backbone** (``zmq_tools.py``, ``Msg_Streamer.send`` / ``Msg_Receiver.recv``): a message is the topic
  (utf-8), a msgpack dict, then any ``__raw_data__`` frames as extra parts.
- **Gaze** (topic ``gaze.3d.01.`` / ``gaze.2d.0.`` ...): ``norm_pos`` in the scene (world) camera image, 0-1 with
  the origin at the **bottom left**; ``confidence``; ``timestamp`` on Pupil time (s).
- **Frame Publisher** (``network_api/controller/frame_publisher_controller.py``): topic ``frame.world`` with
  ``width``, ``height``, ``index``, ``timestamp`` (Pupil time), ``format`` (``jpeg`` | ``yuv`` | ``bgr`` |
  ``gray``) and the image as one raw frame.

Pupil time has its own origin; :func:`clock_offset_s` measures it against the LSL clock through ``t`` (the
request with the shortest round trip, its midpoint), as Pupil Labs' helper scripts sync clocks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np
import pylsl
import zmq

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.gazemath.lens import RadialLens

DEFAULT_REMOTE = "127.0.0.1:50020"  # Pupil Capture's default Pupil Remote port (preferred_remote_port)
GAZE_TOPIC = "gaze."
FRAME_TOPIC = "frame.world"
SURFACE_TOPIC = "surfaces."  # the Surface Tracker's events: surfaces.<surface name>
CLOCK_PROBES = 20
GREY_FORMATS = ("gray", "bgr", "jpeg")  # the Frame Publisher formats radgaze reads ("yuv" is refused)


@dataclass(frozen=True)
class SceneFrame:
    """One scene-camera frame: Pupil time (s), index, the grey image (H, W) uint8."""

    t_pupil: float
    index: int
    grey: np.ndarray


@dataclass(frozen=True)
class GazeDatum:
    """One gaze datum: Pupil time (s), ``norm_pos`` (origin bottom-left), confidence."""

    t_pupil: float
    norm_x: float
    norm_y: float
    confidence: float


class PupilRemote:
    """A REQ socket on Pupil Remote; every request answered within ``timeout_s`` or a ConfigError."""

    def __init__(self, ctx: zmq.Context, address: str = DEFAULT_REMOTE, timeout_s: float = 2.0) -> None:
        self.address = address.removeprefix("tcp://")
        self.host = self.address.rsplit(":", 1)[0]
        self._ctx, self._timeout_ms = ctx, int(timeout_s * 1000)
        self._sock = self._connect()

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, self._timeout_ms)
        sock.connect(f"tcp://{self.address}")
        return sock

    def request(self, command: str) -> str:
        self._sock.send_string(command)
        try:
            return self._sock.recv_string()
        except zmq.Again:
            self._sock.close()
            self._sock = self._connect()  # a REQ socket that missed its reply cannot send again
            raise ConfigError(
                f"no answer from Pupil Remote at tcp://{self.address} to {command!r} within "
                f"{self._timeout_ms / 1000:g} s: start Pupil Capture with its Network API plugin (Pupil Remote) "
                "on that port, or give --remote HOST:PORT"
            ) from None

    def sub_url(self) -> str:
        port = self.request("SUB_PORT")
        if not port.isdigit():
            raise ConfigError(f"Pupil Remote's SUB_PORT: expected a port number, got {port!r}")
        return f"tcp://{self.host}:{port}"

    def pupil_time_s(self) -> float:
        text = self.request("t")
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"Pupil Remote's 't': expected Pupil time in s, got {text!r}") from None

    def close(self) -> None:
        self._sock.close()


def clock_offset_s(remote: PupilRemote, probes: int = CLOCK_PROBES) -> tuple[float, float]:
    """(Pupil time - LSL time, round trip) in s from the ``t`` request with the shortest round trip."""
    best = (np.inf, 0.0)
    for _ in range(probes):
        before = pylsl.local_clock()
        t_pupil = remote.pupil_time_s()
        after = pylsl.local_clock()
        if after - before < best[0]:
            best = (after - before, t_pupil - (before + after) / 2)
    return best[1], best[0]


def subscribe(ctx: zmq.Context, url: str, topics: tuple[str, ...]) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(url)
    for topic in topics:
        sock.subscribe(topic)
    return sock


def receive(sock: zmq.Socket, timeout_ms: int) -> tuple[str, dict] | None:
    """One message (topic, payload with ``__raw_data__`` when extra parts came), or None after ``timeout_ms``."""
    if not sock.poll(timeout_ms):
        return None
    topic, payload, *extra = sock.recv_multipart()
    message = msgpack.unpackb(payload, raw=False)
    if not isinstance(message, dict):
        raise ConfigError(f"Pupil message {topic!r}: expected a msgpack map, got {type(message).__name__}")
    if extra:
        message["__raw_data__"] = extra
    return topic.decode("utf-8", "replace"), message


def receive_all(sock: zmq.Socket, timeout_ms: int, max_n: int = 1000) -> list[tuple[str, dict]]:
    """Every message waiting (at most ``max_n``), after waiting up to ``timeout_ms`` for the first."""
    out = []
    got = receive(sock, timeout_ms)
    while got is not None:
        out.append(got)
        got = receive(sock, 0) if len(out) < max_n else None
    return out


def read_intrinsics(path: str | Path) -> dict[tuple[int, int], RadialLens]:
    """A Pupil Capture camera intrinsics file (``<camera name>.intrinsics``: msgpack, camera_models.py
    ``Camera_Model.save``) -> its radial lens per resolution; anything else in one line."""
    path = Path(path)
    try:
        data = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    except (OSError, ValueError, msgpack.exceptions.ExtraData) as exc:
        raise ConfigError(
            f"--intrinsics {path}: expected Pupil Capture's .intrinsics file (msgpack), got {exc}"
        ) from None
    lenses = {}
    for key, value in data.items() if isinstance(data, dict) else ():
        if not (isinstance(value, dict) and "camera_matrix" in value):
            continue
        if value.get("cam_type") != "radial":
            raise ConfigError(
                f"--intrinsics {path} {key}: expected cam_type 'radial', got {value.get('cam_type')!r} "
                "(fisheye lenses are not modelled: use --surface, where Pupil Capture undistorts)"
            )
        w, h = (int(v) for v in str(key).strip("()").split(","))
        lenses[(w, h)] = RadialLens(np.asarray(value["camera_matrix"]), np.asarray(value["dist_coefs"]))
    if not lenses:
        raise ConfigError(
            f"--intrinsics {path}: expected intrinsics keyed by resolution like '(1280, 720)', found none"
        )
    return lenses


def _grey_from_raw(fmt: str, raw: bytes, width: int, height: int) -> np.ndarray:
    if fmt == "gray":
        return np.frombuffer(raw, np.uint8).reshape(height, width)
    if fmt == "bgr":
        bgr = np.frombuffer(raw, np.uint8).reshape(height, width, 3).astype(np.float32)
        return (bgr @ np.array([0.114, 0.587, 0.299], np.float32) + 0.5).astype(np.uint8)  # ITU-R BT.601 luma
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(raw)).convert("L"))


def scene_frame(message: dict) -> SceneFrame:
    """A ``frame.world`` message -> its grey frame; a format radgaze does not read, or a wrong size, in one line."""
    fmt = message.get("format")
    if fmt not in GREY_FORMATS:
        raise ConfigError(
            f"frame.world: expected the Frame Publisher's format {' | '.join(GREY_FORMATS)}, got {fmt!r}: "
            "set its format to gray (or bgr / jpeg) in Pupil Capture"
        )
    width, height = int(message["width"]), int(message["height"])
    raw = b"".join(message.get("__raw_data__", []))
    try:
        grey = _grey_from_raw(fmt, raw, width, height)
    except (ValueError, OSError) as exc:
        raise ConfigError(
            f"frame.world ({fmt}): expected a {width} x {height} image, got {len(raw)} bytes ({exc})"
        ) from None
    if grey.shape != (height, width):
        raise ConfigError(
            f"frame.world: expected a {width} x {height} image, got {grey.shape[1]} x {grey.shape[0]}"
        )
    return SceneFrame(float(message["timestamp"]), int(message.get("index", -1)), grey)


def gaze_datum(message: dict) -> GazeDatum:
    """A ``gaze.*`` message -> its time, norm_pos and confidence (bad fields in one line)."""
    try:
        nx, ny = (float(v) for v in message["norm_pos"])
        return GazeDatum(float(message["timestamp"]), nx, ny, float(message.get("confidence", 1.0)))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            "gaze datum: expected norm_pos [x, y] and timestamp (Pupil Capture's gaze), got keys "
            f"{sorted(message)[:8]}"
        ) from None
