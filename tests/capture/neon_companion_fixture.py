"""A stand-in for the Neon Companion app's real-time API, in its own process: ``python neon_companion_fixture.py SPEC``.

Written from what pupil-labs/realtime-python-api (1.9.0) and the aiortsp it bundles talk to:
- HTTP (``device.py``, ``models.py``): ``GET /api/status`` answers ``{"message", "result": [components]}``, each
  ``{"model": "Phone" | "Hardware" | "Sensor", "data": {...}}``; a Sensor has ``sensor`` ("world", "gaze"),
  ``conn_type`` ("DIRECT"), ``connected``, ``ip``, ``port``, ``params``, ``protocol`` and its stream is
  ``rtsp://ip:port/?params`` (``Sensor.url``). ``GET /calibration.bin`` (``APIPath.CALIBRATION`` is
  ``/api/../calibration.bin``) is one record of pupil-labs-neon-recording's ``Calibration`` dtype (``calib.py``).
- Time Echo (``time_echo.py``): a TCP server at the Phone's ``time_echo_port``; per 8-byte request (client ms,
  ``!Q``) it answers ``!QQ``: that value and the phone's own Unix time in ms.
- RTSP (aiortsp ``rtsp/session.py``, ``connection.py``, ``sdp.py``): OPTIONS (``Public`` is required), DESCRIBE
  (SDP; ``rtpmap`` gives encoding and clock rate, ``fmtp`` the H.264 ``sprop-parameter-sets``), SETUP (the
  client's scheme ``rtsp`` means aiortsp's UDP transport: ``Transport: RTP/AVP;unicast;client_port=a-b``; the answer
  needs ``Transport`` and ``Session``), PLAY, GET_PARAMETER (keep-alive), TEARDOWN.
- RTP/RTCP (RFC 3550, RFC 6184; ``streaming/base.py``, ``video.py``, ``nal_unit.py``, ``gaze.py``): the scene
  video is H.264 (here libx264 through PyAV, baseline, no B-frames, an IDR every 30 frames; SPS/PPS only in the
  SDP, so the client's decoder works only if it reads them there), one NAL unit per packet or FU-A fragments
  (type 28) above 1400 bytes, the marker bit on an access unit's last packet; gaze is ``com.pupillabs.gaze1``,
  one datum per packet, ``struct "!ffB"`` (x, y in scene px, worn 255/0) or a longer variant (``gaze_bytes`` 65:
  eye state appended). RTCP sender reports (PT 200) tie each stream's RTP clock to NTP wall time (the phone's
  clock); the client drops RTP until the first one.

The phone's clock is the host's wall clock + ``phone_minus_wall_s`` (by default 3.7 s, a phone whose NTP is off:
only the Time Echo finds that; ``time_echo`` false: an app without it), running ``drift_ppm`` fast; the RTP clocks run on it. The scene camera
(1600 x 1200, 30 Hz, a Neon-like lens) sees the screen and its markers through a moving head (the Pupil Core
stand-in's frames and pose, its lens model); gaze at 200 Hz in the recorded (distorted) scene image looks at known
screen points; 5 % not worn. The truth (LSL time, screen px, valid) is written before READY.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import secrets
import struct
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pylsl
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pupil_capture_fixture import HEAD_PERIOD_S, Lens, gaze_plan, head_pose, screen_image, see  # noqa: E402

from radgaze.capture.gazemath.surface import apply_homography  # noqa: E402

FRAME_W, FRAME_H, FRAME_HZ, GAZE_HZ = 1600, 1200, 30.0, 200.0
KEYFRAME_EVERY = 30
CLOCK_HZ = 90000  # RTP clock of both streams (RFC 6184's for H.264; the gaze stream's is the server's choice)
MTU_PAYLOAD = 1400
PT_VIDEO, PT_GAZE = 96, 99
NTP_FROM_UNIX_S = 2208988800
# made up for the test, of the kind Neon's scene camera calibration has (1600 x 1200, OpenCV's rational model with
# 8 coefficients, as the Calibration record stores them); the screen ~680 px wide in the frame, as at ~65 cm
NEON_SCENE = {
    "camera_matrix": [[892.0, 0.0, 812.5], [0.0, 891.6, 597.3], [0.0, 0.0, 1.0]],
    "dist_coefs": [[-0.129, 0.107, 0.00021, -0.00037, 0.0, 0.171, 0.0, 0.026]],
}
CENTRE_SHIFT_PX = np.array(
    [160.0, 240.0]
)  # the Pupil stand-in's pose (1280 x 720) moved to this frame's centre
# pupil-labs-neon-recording calib.py Calibration.dtype (little-endian, as the phone writes it)
CALIBRATION_DTYPE = np.dtype(
    [("version", "u1"), ("serial", "6S")]
    + [
        (f"{cam}_{field}", shape)
        for cam in ("scene", "right", "left")
        for field, shape in (
            ("camera_matrix", "<(3,3)f8"),
            ("distortion_coefficients", "<8f8"),
            ("extrinsics_affine_matrix", "<(4,4)f8"),
        )
    ]
    + [("crc", "<u4")]
)


def pose(t: float) -> np.ndarray:
    """screen px -> ideal scene px at time t."""
    shift = np.array([[1, 0, CENTRE_SHIFT_PX[0]], [0, 1, CENTRE_SHIFT_PX[1]], [0, 0, 1.0]])
    return shift @ head_pose(t % HEAD_PERIOD_S)


def calibration_bytes() -> bytes:
    rec = np.zeros(1, CALIBRATION_DTYPE)
    rec["version"], rec["serial"] = 1, b"abc123"
    rec["scene_camera_matrix"] = NEON_SCENE["camera_matrix"]
    rec["scene_distortion_coefficients"] = NEON_SCENE["dist_coefs"][0]
    for cam in ("right", "left"):  # eye cameras: 192 x 192 px, no distortion (not used by radgaze)
        rec[f"{cam}_camera_matrix"] = [[140.0, 0, 96], [0, 140.0, 96], [0, 0, 1]]
    for cam in ("scene", "right", "left"):
        rec[f"{cam}_extrinsics_affine_matrix"] = np.eye(4)
    body = rec.tobytes()[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01 removed)."""
    out, i, n = [], 0, len(annexb)
    starts = []
    while True:
        i = annexb.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        unit = annexb[s:e]
        out.append(unit.rstrip(b"\x00") if k + 1 < len(starts) else unit)
    return [u for u in out if u]


def encode_video(frames: list[np.ndarray]) -> tuple[list[list[bytes]], bytes, bytes]:
    """libx264 (PyAV): per frame its NAL units without SPS/PPS/SEI, and the SPS and PPS (for the SDP)."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = FRAME_W, FRAME_H, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, int(FRAME_HZ)), Fraction(int(FRAME_HZ))
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "crf": "20",
                   "x264-params": f"keyint={KEYFRAME_EVERY}:min-keyint={KEYFRAME_EVERY}:scenecut=0:bframes=0"}  # fmt: skip
    packets = []
    for k, grey in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(grey, format="gray").reformat(format="yuv420p")
        frame.pts = k
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    sps = pps = b""
    units = []
    for p in packets:
        au = []
        for u in nal_units(bytes(p)):
            kind = u[0] & 0x1F
            if kind == 7:
                sps = u
            elif kind == 8:
                pps = u
            elif kind != 6:
                au.append(u)
        units.append(au)
    assert len(units) == len(frames) and sps and pps, (len(units), len(frames))
    return units, sps, pps


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool) -> bytes:
    return (
        struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        + payload
    )


def h264_payloads(unit: bytes) -> list[bytes]:
    """RFC 6184: a single NAL unit packet, or FU-A fragments (indicator: F|NRI|28, header: S|E|R|type)."""
    if len(unit) <= MTU_PAYLOAD:
        return [unit]
    head, body = unit[0], unit[1:]
    chunks = [body[i : i + MTU_PAYLOAD - 2] for i in range(0, len(body), MTU_PAYLOAD - 2)]
    out = []
    for i, c in enumerate(chunks):
        fu_header = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0) | (head & 0x1F)
        out.append(bytes([(head & 0xE0) | 28, fu_header]) + c)
    return out


def sender_report(ssrc: int, t_phone: float, ts: int, packets: int, octets: int) -> bytes:
    """RTCP SR (RFC 3550 6.4.1): NTP time (s since 1900, 32.32 fixed point) and the RTP time stamp of that
    instant."""
    ntp = t_phone + NTP_FROM_UNIX_S
    sec = int(ntp)
    frac = int((ntp - sec) * 2**32) & 0xFFFFFFFF
    body = struct.pack("!IIIIII", ssrc, sec, frac, ts & 0xFFFFFFFF, packets, octets)
    return struct.pack("!BBH", 0x80, 200, len(body) // 4) + body


def scene_video(spec: dict, lens: Lens, rng) -> tuple[list[list[bytes]], bytes, bytes]:
    """The encoded head-pose loop (2 s at 30 Hz); ``cache``: a file it is kept in between runs of one test module
    (rendering and encoding 1600 x 1200 frames takes seconds)."""
    cache = Path(spec["cache"]) if spec.get("cache") else None
    if cache is not None and cache.exists():
        return pickle.loads(cache.read_bytes())
    screen = screen_image(spec.get("markers", True), int(spec.get("cell_px", 16)))
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float64)
    ideal = lens.ideal(xx + 0.5, yy + 0.5)
    n_frames = int(HEAD_PERIOD_S * FRAME_HZ)
    grey = [see(screen, pose(k / FRAME_HZ), rng, ideal, (FRAME_W, FRAME_H)) for k in range(n_frames)]
    video = encode_video(grey)
    if cache is not None:
        cache.write_bytes(pickle.dumps(video))
    return video


class Companion:
    """The phone: its clock, the scene video and gaze plan, and the truth."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.get("seed", 0))
        wall_minus_lsl = time.time() - pylsl.local_clock()
        self.phone_minus_lsl = wall_minus_lsl + float(spec.get("phone_minus_wall_s", 3.7))
        self.drift, self.t_start = float(spec.get("drift_ppm", 0.0)) * 1e-6, pylsl.local_clock()
        self.lens = Lens(NEON_SCENE)
        self.access_units, self.sps, self.pps = scene_video(spec, self.lens, rng)
        self.n_gaze = int(float(spec["duration_s"]) * GAZE_HZ)
        self.points, confidence = gaze_plan(self.n_gaze, np.random.default_rng(spec.get("seed", 0) + 1))
        self.worn = confidence >= 0.6
        self.gaze_bytes = int(spec.get("gaze_bytes", 9))
        self.t0 = 0.0  # LSL time of frame 0 and gaze 0, set at READY

    def phone_s(self, t_lsl: float) -> float:
        """The phone's clock: its offset, and its own rate (``drift_ppm``) from the start on."""
        return t_lsl + self.phone_minus_lsl + self.drift * (t_lsl - self.t_start)

    def gaze_payload(self, k: int) -> bytes:
        t = k / GAZE_HZ
        sx, sy = apply_homography(pose(t), self.points[k, 0], self.points[k, 1])
        x, y = self.lens.distort(float(sx), float(sy))  # Neon's gaze is in the recorded scene image
        worn = 255 if self.worn[k] else 0
        if self.gaze_bytes == 9:
            return struct.pack("!ffB", x, y, worn)
        # EyestateGazeData: + pupil diameter, eyeball centre, optical axis per eye
        return struct.pack("!ffB14f", x, y, worn, 3.1, -30, 10, -20, 0, 0, 1, 3.2, 30, 10, -20, 0, 0, 1)


class RtpSender:
    """One RTP stream to a client's UDP ports, with its sender reports."""

    def __init__(self, phone: Companion, pt: int, rtp_sock, rtcp_sock, client: tuple[str, int, int]) -> None:
        self.phone, self.pt = phone, pt
        self.rtp, self.rtcp = rtp_sock, rtcp_sock
        self.to_rtp, self.to_rtcp = (client[0], client[1]), (client[0], client[2])
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.ts_base = secrets.randbits(30)  # below 2**31: aiortsp's reader does not unwrap the 32-bit stamp
        self.packets = self.octets = 0

    def ts(self, t_lsl: float) -> int:
        """The RTP time stamp of an instant: the stream's clock runs on the phone's."""
        return self.ts_base + round(
            (self.phone.phone_s(t_lsl) - self.phone.phone_s(self.phone.t0)) * CLOCK_HZ
        )

    def send(self, payload: bytes, t_lsl: float, marker: bool) -> None:
        self.rtp.sendto(
            rtp_packet(self.pt, self.seq, self.ts(t_lsl), self.ssrc, payload, marker), self.to_rtp
        )
        self.seq += 1
        self.packets += 1
        self.octets += len(payload)

    def report(self) -> None:
        now = pylsl.local_clock()
        sr = sender_report(self.ssrc, self.phone.phone_s(now), self.ts(now), self.packets, self.octets)
        self.rtcp.sendto(sr, self.to_rtcp)


async def stream(sender: RtpSender, kind: str) -> None:
    """Live from PLAY on: each frame / datum at its capture time, a sender report first and every second."""
    phone = sender.phone
    rate = FRAME_HZ if kind == "world" else GAZE_HZ
    total = int(phone.n_gaze * FRAME_HZ / GAZE_HZ) if kind == "world" else phone.n_gaze
    k = max(0, int(np.ceil((pylsl.local_clock() - phone.t0) * rate)))
    sender.report()
    next_report = time.monotonic() + 1.0
    lose_every_s = float(phone.spec.get("lose_video_packet_every_s", 0.0))
    next_loss = phone.t0 + lose_every_s / 2 if lose_every_s else np.inf
    while k < total:
        t = phone.t0 + k / rate
        now = pylsl.local_clock()
        if t > now:
            await asyncio.sleep(min(t - now, 0.005))
            continue
        if kind == "world":
            if phone.spec.get("frames", True):
                units = phone.access_units[k % len(phone.access_units)]
                payloads = [p for u in units for p in h264_payloads(u)]
                lose = len(payloads) // 2 if t >= next_loss else -1  # one packet lost on the way (Wi-Fi)
                next_loss += lose_every_s if lose >= 0 else 0.0
                for i, p in enumerate(payloads):
                    if i == lose:
                        sender.seq += 1
                        continue
                    sender.send(p, t, i == len(payloads) - 1)
        elif phone.spec.get("gaze", True):
            sender.send(phone.gaze_payload(k), t, True)
        k += 1
        if time.monotonic() >= next_report:
            sender.report()
            next_report += 1.0
    await asyncio.sleep(3600)


def sdp(kind: str, phone: Companion) -> str:
    lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=Neon Companion", "c=IN IP4 127.0.0.1", "t=0 0"]
    if kind == "world":
        sets = ",".join(base64.b64encode(u).decode() for u in (phone.sps, phone.pps))
        lines += [f"m=video 0 RTP/AVP {PT_VIDEO}", f"a=rtpmap:{PT_VIDEO} H264/{CLOCK_HZ}",
                  f"a=fmtp:{PT_VIDEO} packetization-mode=1;profile-level-id={phone.sps[1:4].hex()};"
                  f"sprop-parameter-sets={sets}", "a=framerate:30"]  # fmt: skip
    else:
        lines += [f"m=application 0 RTP/AVP {PT_GAZE}", f"a=rtpmap:{PT_GAZE} com.pupillabs.gaze1/{CLOCK_HZ}"]
    return "\r\n".join(lines) + "\r\n"


class RtspConnection:
    """One client's RTSP control connection (one stream: ``?camera=world`` or ``?camera=gaze``)."""

    def __init__(self, phone: Companion, reader, writer) -> None:
        self.phone, self.reader, self.writer = phone, reader, writer
        self.kind, self.session = None, secrets.token_hex(8)
        self.socks, self.task, self.client = [], None, None

    async def serve(self) -> None:
        try:
            while True:
                head = await self.reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, url, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
                }
                length = int(headers.get("content-length", 0))
                if length:
                    await self.reader.readexactly(length)
                self.answer(method, url, headers)
                await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.task:
                self.task.cancel()
            for s in self.socks:
                s.close()
            self.writer.close()

    def reply(self, cseq: str, extra: dict | None = None, body: str = "", status: str = "200 OK") -> None:
        out = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: neon-companion-stand-in"]
        out += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if body:
            out += ["Content-Type: application/sdp", f"Content-Length: {len(body.encode())}"]
        self.writer.write(("\r\n".join(out) + "\r\n\r\n" + body).encode())

    def answer(self, method: str, url: str, headers: dict) -> None:
        cseq = headers.get("cseq", "0")
        if self.kind is None:
            self.kind = "world" if "camera=world" in url else "gaze" if "camera=gaze" in url else None
        if self.kind is None:
            return self.reply(cseq, status="404 Not Found")
        if method == "OPTIONS":
            return self.reply(cseq, {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"})
        if method == "DESCRIBE":
            return self.reply(cseq, body=sdp(self.kind, self.phone))
        session = {"Session": f"{self.session};timeout=60"}
        if method == "SETUP":
            return self.setup(cseq, headers, session)
        if method == "PLAY":
            self.reply(cseq, {**session, "Range": "npt=now-"})
            sender = RtpSender(
                self.phone, PT_VIDEO if self.kind == "world" else PT_GAZE, *self.socks, self.client
            )
            self.task = asyncio.ensure_future(stream(sender, self.kind))
            return None
        if method in ("GET_PARAMETER", "TEARDOWN"):
            if method == "TEARDOWN" and self.task:
                self.task.cancel()
            return self.reply(cseq, session)
        return self.reply(cseq, status="405 Method Not Allowed")

    def setup(self, cseq: str, headers: dict, session: dict) -> None:
        import socket

        fields = dict(f.split("=", 1) for f in headers.get("transport", "").split(";") if "=" in f)
        if "client_port" not in fields:  # only the UDP transport aiortsp asks for with rtsp://
            return self.reply(cseq, status="461 Unsupported Transport")
        rtp_port, rtcp_port = (int(p) for p in fields["client_port"].split("-"))
        host = self.writer.get_extra_info("peername")[0]
        self.client = (host, rtp_port, rtcp_port)
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for s in self.socks:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        ports = "-".join(str(s.getsockname()[1]) for s in self.socks)
        transport = f"RTP/AVP;unicast;client_port={fields['client_port']};server_port={ports}"
        return self.reply(cseq, {"Transport": transport, **session})


async def time_echo(phone: Companion, reader, writer) -> None:
    try:
        while True:
            (client_ms,) = struct.unpack("!Q", await reader.readexactly(8))
            phone_ms = int(phone.phone_s(pylsl.local_clock()) * 1000)
            writer.write(struct.pack("!QQ", client_ms, phone_ms))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def status(phone: Companion, rtsp_port: int, echo_port: int) -> dict:
    def sensor(name: str, params: str) -> dict:
        return {"model": "Sensor", "data": {"sensor": name, "conn_type": "DIRECT", "connected": True,
                "ip": "127.0.0.1", "port": rtsp_port, "params": params, "protocol": "rtsp", "stream_error": False}}  # fmt: skip

    phone_data = {"battery_level": 80, "battery_state": "OK", "device_id": "d0c5", "device_name": "Neon Companion",
                  "ip": "127.0.0.1", "memory": 10**10, "memory_state": "OK"}  # fmt: skip
    if phone.spec.get("time_echo", True):  # apps before 1.4.28 have none (the client's simple/device.py)
        phone_data["time_echo_port"] = echo_port
    result = [{"model": "Phone", "data": phone_data},
              {"model": "Hardware", "data": {"version": "2.0", "module_serial": "abc123"}}]  # fmt: skip
    if phone.spec.get("world_sensor", True):
        result.append(sensor("world", "camera=world"))
    result.append(sensor("gaze", "camera=gaze"))
    return {"message": "Success", "result": result}


async def serve(spec: dict) -> None:
    phone = Companion(spec)
    rtsp = await asyncio.start_server(lambda r, w: RtspConnection(phone, r, w).serve(), "127.0.0.1", 0)
    echo = await asyncio.start_server(lambda r, w: time_echo(phone, r, w), "127.0.0.1", 0)
    rtsp_port, echo_port = rtsp.sockets[0].getsockname()[1], echo.sockets[0].getsockname()[1]
    app = web.Application()
    app.router.add_get("/api/status", lambda _: web.json_response(status(phone, rtsp_port, echo_port)))
    app.router.add_get("/calibration.bin", lambda _: web.Response(body=calibration_bytes()))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]
    phone.t0 = pylsl.local_clock() + 1.0  # data start 1 s after READY (the bridge connects meanwhile)
    t = phone.t0 + np.arange(phone.n_gaze) / GAZE_HZ
    np.savez(spec["truth"], t=t, x=phone.points[:, 0], y=phone.points[:, 1], valid=phone.worn)
    print("READY", http_port, flush=True)
    await asyncio.sleep(float(spec["duration_s"]) + float(spec.get("linger_s", 2.0)) + 1.0)


if __name__ == "__main__":
    asyncio.run(serve(json.loads(Path(sys.argv[1]).read_text())))
