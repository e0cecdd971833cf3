"""Pupil Labs Neon over its real-time API, through Pupil Labs' own client (``pupil-labs-realtime-api``).

The Neon Companion app serves ``GET /api/status`` (its sensors: the scene camera "world" and "gaze", each an RTSP
URL), ``/calibration.bin`` (the scene camera's intrinsics: K and 8 distortion coefficients, OpenCV's rational
model) and a Time Echo port. The scene video is H.264 over RTP, gaze the RTP payload ``com.pupillabs.gaze1`` (x, y
in scene px, worn; longer variants add eye state), each stream's clock tied to the phone's wall clock by RTCP
sender reports: the client gives every frame and datum the phone's Unix time. The phone's clock against the LSL
clock is measured with the Time Echo protocol (``time_echo.py``: the phone answers its time in ms; the offset is
the median over many echoes, assuming symmetric transport), with the LSL clock as the client's clock.

:class:`NeonReceiver` runs the client in a thread (asyncio) and hands decoded frames and gaze, in arrival order, to
a queue. Needs the optional extra ``radgaze[headmounted]``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
import pylsl

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.gazemath.lens import RadialLens

DEFAULT_DEVICE = "neon.local:8080"  # the Companion app's default (realtime-python-api docs, under the hood)
NEON_HINT = "Neon needs the optional extra: pip install 'radgaze[headmounted]' (pupil-labs-realtime-api)"
ECHOES = 50  # Time Echo measurements per clock estimate (the client's default is 100)
CONNECT_S = 5.0
ECHO_S = 10.0  # for all the echoes of one clock estimate
TEARDOWN_S = 1.0  # at stop, for the streams' RTSP TEARDOWN answers
# 8-bit pixel formats whose first plane is the luma (the grey image)
LUMA_FIRST_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"}
)


@dataclass(frozen=True)
class NeonGaze:
    """One gaze datum: phone time (Unix s), x, y in the recorded scene image (px), worn."""

    t_phone: float
    x_scene_px: float
    y_scene_px: float
    worn: bool


@dataclass(frozen=True)
class NeonFrame:
    """One decoded scene frame: phone time (Unix s) and the decoder's frame (grey on demand: skipped frames are
    never converted)."""

    t_phone: float
    av_frame: object

    def grey(self) -> np.ndarray:
        """The luma plane of a YUV frame as it is (no conversion: sws_scale to "gray" took ~3.4 ms of CPU a
        1600 x 1200 frame, holding the GIL the client's receiving thread needs); other formats converted."""
        f = self.av_frame
        if f.format.name in LUMA_FIRST_FORMATS:
            y = f.planes[0]
            return np.frombuffer(y, np.uint8).reshape(f.height, y.line_size)[:, : f.width]
        return f.to_ndarray(format="gray")


@dataclass(frozen=True)
class NeonStreams:
    """What /api/status and /calibration.bin gave."""

    world_url: str
    gaze_url: str
    lens: RadialLens
    echo: tuple[str, int] | None  # the Time Echo server (phone ip, port); None: an app without it
    device_name: str
    module_serial: str


def _api():
    try:
        from pupil_labs import realtime_api
        from pupil_labs.realtime_api.time_echo import TimeOffsetEstimator
    except ImportError as exc:
        raise ConfigError(NEON_HINT) from exc
    return realtime_api, TimeOffsetEstimator


def lsl_ms() -> int:
    """The LSL clock in ms: the client clock the Time Echo offset is measured against."""
    return int(round(pylsl.local_clock() * 1000.0))


def gaze_from(datum) -> NeonGaze:
    """Any of the client's gaze types: those with one gaze point (x, y), or dual monocular (their mean)."""
    if hasattr(datum, "x"):
        x, y = datum.x, datum.y
    else:
        x, y = (datum.left.x + datum.right.x) / 2, (datum.left.y + datum.right.y) / 2
    return NeonGaze(float(datum.timestamp_unix_seconds), float(x), float(y), bool(datum.worn))


def lens_from(calibration) -> RadialLens:
    return RadialLens(
        np.asarray(calibration.scene_camera_matrix, np.float64).reshape(3, 3),
        np.asarray(calibration.scene_distortion_coefficients, np.float64).ravel(),
    )


async def read_device(address: str) -> NeonStreams:
    """Status and calibration from the Companion at HOST:PORT (a ConfigError in one line when they do not come)."""
    api, _ = _api()
    host, _, port = address.rpartition(":")
    url = f"http://{address}/api/status"
    async with api.Device(host, int(port)) as device:
        try:
            status = await asyncio.wait_for(device.get_status(), CONNECT_S)
        except Exception as exc:  # noqa: BLE001 (aiohttp's, the client's and the JSON's errors alike)
            raise ConfigError(
                f"no answer from a Neon Companion at {url} ({type(exc).__name__}: {exc}): start the Companion app, "
                "put the phone and this computer on one network and give --device HOST:PORT as the app shows it"
            ) from None
        world, gaze = status.direct_world_sensor(), status.direct_gaze_sensor()
        for sensor, what in ((world, "scene camera ('world')"), (gaze, "gaze")):
            if sensor is None or not sensor.connected:
                raise ConfigError(
                    f"Neon Companion at {address}: its {what} stream is not connected (GET /api/status): plug the "
                    "Neon glasses into the phone and wait until the app shows the scene camera"
                )
        try:
            calibration = await asyncio.wait_for(device.get_calibration(), CONNECT_S)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"Neon Companion at {address} gave no scene camera calibration (GET /calibration.bin: {exc}): radgaze "
                "undistorts the scene camera with it (Pupil Invisible has none and is not supported)"
            ) from None
    echo = (status.phone.ip, int(status.phone.time_echo_port)) if status.phone.time_echo_port else None
    return NeonStreams(world.url, gaze.url, lens_from(calibration), echo, status.phone.device_name,
                       status.hardware.module_serial)  # fmt: skip


async def phone_minus_lsl_s(echo: tuple[str, int], measurements: int = ECHOES) -> tuple[float, float]:
    """(phone clock - LSL clock, median round trip) in s, by the Time Echo protocol with the LSL clock (ms)."""
    _, estimator = _api()
    try:  # the client returns None when it cannot connect; other socket errors and silence end here too
        estimates = await asyncio.wait_for(estimator(*echo).estimate(measurements, time_fn_ms=lsl_ms), ECHO_S)
    except OSError:  # TimeoutError (wait_for) is one too
        estimates = None
    if estimates is None:
        raise ConfigError(f"Neon Companion's Time Echo at {echo[0]}:{echo[1]} did not answer")
    # the client's offset: client midpoint - phone time (ms)
    return -estimates.time_offset_ms.median / 1000.0, estimates.roundtrip_duration_ms.median / 1000.0


class SequenceGaps:
    """RTP packets lost on a stream, counted from the sequence numbers in the order the client's reader hands
    the packets on (its ``iter_packets``, which the streamer's ``receive`` consumes)."""

    def __init__(self, reader) -> None:
        self.lost, self._next = 0, None
        packets = reader.iter_packets

        async def iter_packets():
            async for pkt in packets():
                if self._next is not None and pkt.seq != self._next:
                    self.lost += (pkt.seq - self._next) % 65536
                self._next = (pkt.seq + 1) % 65536
                yield pkt

        reader.iter_packets = iter_packets


class NeonReceiver:
    """The client's video and gaze streams in a thread of their own (asyncio); items in arrival order in
    :attr:`items` (NeonFrame | NeonGaze). :attr:`error` holds what stopped it."""

    def __init__(self, streams: NeonStreams) -> None:
        self.streams = streams
        self.items: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="neon-receiver", daemon=True)
        self.clock: tuple[float, float] | None = None  # the latest (phone - LSL, round trip), s
        self.clock_log: list[tuple[float, float, float]] = []  # (LSL time, phone - LSL, round trip)
        self.clock_failures = 0
        self.resync_s = 10.0
        self.frames_damaged = 0  # decoded after a lost packet, before the next key frame: not used

    def start(self) -> NeonReceiver:
        self._thread.start()
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._task = self._loop.create_task(self._main())
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 (handed to the bridge through .error)
            self.error = exc
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        """The client's own tasks (aiortsp's stream runners, RTCP and timeout loops) ended before the loop
        closes (else each is reported as destroyed while pending, on stderr, at every stop)."""
        pending = asyncio.all_tasks(self._loop)
        if (
            pending
        ):  # their TEARDOWN answered first (cancelled while waiting for it, aiortsp prints a traceback)
            self._loop.run_until_complete(asyncio.wait(pending, timeout=TEARDOWN_S))
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.wait(pending))
        self._loop.close()

    async def _main(self) -> None:
        api, _ = _api()
        tasks = [self._video(api), self._gaze(api)]
        if self.streams.echo is not None:
            tasks.append(self._clock())
        await asyncio.gather(*tasks)

    async def _video(self, api) -> None:
        """Decoded frames; after a lost RTP packet none until the next intact key frame (the decoder conceals
        the loss: frames torn between poses, whose markers give a wrong homography)."""
        async with api.RTSPVideoFrameStreamer(self.streams.world_url) as streamer:
            gaps, lost, damaged = SequenceGaps(streamer.reader), 0, True
            async for frame in streamer.receive():
                f = frame.av_frame
                if gaps.lost > lost or f.is_corrupt:
                    damaged, lost = True, gaps.lost
                elif f.key_frame:
                    damaged = False
                if damaged:
                    self.frames_damaged += 1
                    continue
                self.items.put(NeonFrame(float(frame.timestamp_unix_seconds), f))
        raise ConfigError(f"the Neon scene video stream {self.streams.world_url} ended")

    async def _gaze(self, api) -> None:
        async with api.RTSPGazeStreamer(self.streams.gaze_url) as streamer:
            async for datum in streamer.receive():
                self.items.put(gaze_from(datum))
        raise ConfigError(f"the Neon gaze stream {self.streams.gaze_url} ended")

    async def _clock(self) -> None:
        """The phone's clock against the LSL clock again every ``resync_s`` (a failed echo keeps the last)."""
        while True:
            await asyncio.sleep(self.resync_s)
            try:
                self.set_clock(*await phone_minus_lsl_s(self.streams.echo))
            except (ConfigError, OSError):
                self.clock_failures += 1

    def set_clock(self, offset_s: float, rtt_s: float) -> None:
        self.clock = (offset_s, rtt_s)
        self.clock_log.append((pylsl.local_clock(), offset_s, rtt_s))

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._thread.join(5.0)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def read_device_now(address: str) -> tuple[NeonStreams, tuple[float, float]]:
    """:func:`read_device` and the phone's clock against the LSL clock (phone - LSL, round trip; s), synchronously.
    A Companion app without Time Echo: the phone's clock is taken as this computer's wall clock (NTP both),
    the round trip NaN."""
    streams = asyncio.run(read_device(address))
    if streams.echo is None:
        return streams, (time.time() - pylsl.local_clock(), float("nan"))
    return streams, asyncio.run(phone_minus_lsl_s(streams.echo))
