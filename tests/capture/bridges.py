"""Bridge fixtures: what each public LSL gaze bridge publishes, as plans a real outlet process pushes
(``python tests/capture/bridges.py SPEC.json``) or an XDF file holds (``write_bridge_xdf``).

Every plan is written from the bridge's own public source (facts only; the per-bridge notes name the file):

- Tobii Pro app — labstreaminglayer/App-TobiiPro, mainwindow.cpp: stream "Tobii", type "Gaze" (commit 6a7a2cc,
  2022) or "Eyetracker" (before), 6 x float32 (left_x, left_y, left_pupil, right_x, right_y, right_pupil),
  channel type ScreenX/ScreenY/pupilsize, unit "screencoords", eye left/right, <acquisition><manufacturer>
  TobiiPro; declared 600 Hz for every device ("// TODO"); source id "Tobiiat_<address>"; stamped with the
  SDK's system_time_stamp / 1e6 (device time); an invalid eye is NaN. An app restart ("Unlink" / "Link")
  destroys the outlet and makes a new one under the same source id.
- Pupil Capture relay — labstreaminglayer/App-PupilLabs, pupil_capture/pupil_capture_lsl_relay/
  (gaze_scene_camera.py, pupillometry_eye_camera.py, fixations_scene_camera.py, channel.py, outlet.py,
  plugin.py): three outlets, all double64, irregular rate (nominal 0), uuid source ids; "pupil_capture" (Gaze,
  22 ch), "pupil_capture_pupillometry_only" (Gaze, 7 ch: confidence, norm_pos_x/y in coordinate_system "eye",
  diameter0/1_2d, diameter0/1_3d; one datum per eye camera, so twice the gaze rate, the other eye's diameters
  NaN), "pupil_capture_fixations" (Fixations, 7 ch). Every datum is pushed with its Pupil timestamp (Pupil
  time set to the LSL clock), in bursts once per world frame (recent_events). norm_pos has its origin
  bottom-left; low-confidence data is still sent (Pupil's min_data_confidence is 0.6).
- Pupil Labs Neon / Invisible relay — pupil-labs/lsl-relay, src/pupil_labs/lsl_relay/outlets.py, channels.py,
  cli.py: "pupil_labs_Gaze" (prefix default "pupil_labs"), type Gaze, 2 x double64 (x, y), channel kind under
  "metatype" (ScreenX/ScreenY), unit pixels, coordinate_system world, irregular rate, source id
  "<device_id>_Gaze", <acquisition> manufacturer "Pupil Labs"; stamps = device unix time - (time.time() -
  local_clock()); Neon's gaze is 200 Hz. No validity channel.
- Gazepoint 6 channels — Gazepoint Control demo/lsl/LSLGazepoint.py (2019, CC0): "GazepointEyeTracker",
  type "gaze", 6 x float32 (FPOGX FPOGY FPOGS FPOGD FPOGID FPOGV, all type "gaze", unit percent / seconds /
  integer / boolean), declared 60 Hz, source id "gazepoint<serial>", <manufacturer> Gazepoint; push_sample
  without a stamp (host time when the line was read); fields it cannot parse are 0.
- Gazepoint 36 channels — the same script extended (CNT ... USER): same stream name, 36 x float32, declared
  150 Hz; fields start NaN and a regex that needs a decimal point fills them, so integer fields (CNT, the
  *V validity flags, FPOGID, BKID, CS, TIMETICK) arrive NaN; no tracked eye = points at 0.00000.
- EyeLink app — labstreaminglayer/App-EyeLink, eyelink.py: "EyeLink", type "Gaze", 10 x double64 (leftEyeX
  leftEyeY rightEyeX rightEyeY leftPupilArea rightPupilArea pixelsPerDegreeX pixelsPerDegreeY
  eyelink_timestamp LSL_timestamp, all type "eyetracking", no unit/eye), declared 500 Hz but the loop sleeps
  1/SR after each push (~400 Hz real), source id "eyelink-<hostname>", stamped with local_clock() at read
  (exact); each sample starts as zeros and only the recorded eye(s) are filled; blink = MISSING_DATA -32768,
  pupil 0.
- pylsl's own examples (labstreaminglayer/pylsl src/pylsl/examples): SendData.py "BioSemi" EEG 8 x float32
  100 Hz source "myuid34234"; SendStringMarkers.py "MyMarkerStream" Markers 1 x string irregular
  "myuidw43536". Non-gaze streams that must never be recorded as gaze.

Each plan keeps the ground truth of the gaze outlet's samples (screen px, validity, stamps); the process
writes the stamps it really pushed (``truth.npz``) so tests compare the stored session with them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

W_PX, H_PX = 1920, 1080
NAN = float("nan")


@dataclass
class OutletPlan:
    name: str
    type: str
    fmt: str  # float32 / double64 / string
    rate_hz: float  # declared (nominal) rate
    source_id: str
    channels: list[dict]  # per channel: the keys the bridge writes (label, type/metatype, unit, eye, ...)
    t: np.ndarray  # (n,) planned sample times, s from the start
    rows: np.ndarray | list  # (n, c) values (strings: list of lists)
    stamps: str = "device"  # device: pushed with t; host-read: stamped with local_clock() at push
    manufacturer: str = ""  # <desc><manufacturer>
    acquisition: dict = field(default_factory=dict)  # <desc><acquisition>
    desc_values: dict = field(default_factory=dict)  # other top-level <desc> values
    burst_s: float = 0.0  # push in bursts every burst_s (Pupil Capture: once per world frame)
    away: tuple[float, float] | None = None  # (from_s, to_s): outlet destroyed, re-made under the same id
    gaze: bool = False  # the stream whose truth is kept
    x_px: np.ndarray | None = None
    y_px: np.ndarray | None = None
    valid: np.ndarray | None = None

    @property
    def n_channels(self) -> int:
        return len(self.channels) if self.channels else 1


# ------------------------------------------------------------------------------------------------ truth
def trajectory(t: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixations (~250 ms) at random points with small tremor: (x_px, y_px) on a 1920 x 1080 screen."""
    rng = np.random.default_rng(seed)
    n_fix = int(t[-1] / 0.25) + 2 if t.size else 1
    cx, cy = rng.uniform(100, W_PX - 100, n_fix), rng.uniform(100, H_PX - 100, n_fix)
    k = np.minimum((t / 0.25).astype(int), n_fix - 1)
    return cx[k] + rng.normal(0, 2.0, t.size), cy[k] + rng.normal(0, 2.0, t.size)


def blink_mask(t: np.ndarray, period_s: float = 1.0, dur_s: float = 0.12) -> np.ndarray:
    """True while blinking: dur_s at the end of every period_s."""
    return (t % period_s) > (period_s - dur_s)


def regular_times(duration_s: float, rate_hz: float) -> np.ndarray:
    return np.arange(int(duration_s * rate_hz)) / rate_hz


# ------------------------------------------------------------------------------------------------ bridges
def _ch(label: str, **kw: str) -> dict:
    return {"label": label, **kw}


def tobii(duration_s: float, seed: int, *, stream_type: str = "Gaze", device_hz: float = 600.0,
          restart: bool = False) -> list[OutletPlan]:  # fmt: skip
    t = regular_times(duration_s, device_hz)
    x, y = trajectory(t, seed)
    blink = blink_mask(t)
    left_off = (t % 0.7) < 0.05  # the left eye alone lost now and then: the right eye carries the sample
    away = (duration_s * 0.4, duration_s * 0.4 + 1.0) if restart else None
    if away is not None:
        keep = (t < away[0]) | (t >= away[1])
        t, x, y, blink, left_off = t[keep], x[keep], y[keep], blink[keep], left_off[keep]
    nx, ny = x / W_PX, y / H_PX
    rows = np.column_stack([nx, ny, np.full(t.size, 3.1), nx, ny, np.full(t.size, 3.2)])
    rows[blink] = NAN
    rows[left_off, 0:3] = NAN
    chans = [
        _ch("left_x", eye="left", type="ScreenX", unit="screencoords"),
        _ch("left_y", eye="left", type="ScreenY", unit="screencoords"),
        _ch("left_pupil", eye="left", type="pupilsize"),
        _ch("right_x", eye="right", type="ScreenX", unit="screencoords"),
        _ch("right_y", eye="right", type="ScreenY", unit="screencoords"),
        _ch("right_pupil", eye="right", type="pupilsize"),
    ]
    acq = {"manufacturer": "TobiiPro", "model": "TODO", "application": "TobiiProApp", "precision": "24"}
    return [OutletPlan("Tobii", stream_type, "float32", 600.0, "Tobiiat_127.0.0.1", chans, t,
                       rows.astype(np.float32), acquisition=acq, away=away, gaze=True, x_px=x, y_px=y,
                       valid=~blink)]  # fmt: skip


def pupil_capture(duration_s: float, seed: int) -> list[OutletPlan]:
    world = "world"
    t = regular_times(duration_s, 200.0)
    x, y = trajectory(t, seed)
    conf = np.where(blink_mask(t), 0.2, 0.95)  # blinks: low confidence, still sent
    rows = np.full((t.size, 22), NAN)
    rows[:, 0], rows[:, 1], rows[:, 2] = conf, x / W_PX, 1.0 - y / H_PX
    rows[:, 18:22] = [25.0, 26.0, 3.1, 3.2]
    xyz = "xyz"
    gaze_ch = [_ch("confidence", eye="both", type="Confidence", unit="normalized")]
    gaze_ch += [_ch(f"norm_pos_{a}", eye="both", type=f"Screen{a.upper()}", unit="normalized",
                    coordinate_system=world) for a in "xy"]  # fmt: skip
    gaze_ch += [_ch(f"gaze_point_3d_{a}", eye="both", type=f"Direction{a.upper()}", unit="mm",
                    coordinate_system=world) for a in xyz]  # fmt: skip
    for stem in ("eye_center{e}_3d_{a}", "gaze_normal{e}_{a}"):
        gaze_ch += [_ch(stem.format(e=e, a=a), eye=("right", "left")[e], type=f"Position{a.upper()}",
                        unit="mm", coordinate_system=world) for e in range(2) for a in xyz]  # fmt: skip
    diam = [_ch(f"diameter{e}_2d", eye=("right", "left")[e], type="Diameter", unit="pixels",
                coordinate_system=f"eye{e}") for e in range(2)]  # fmt: skip
    diam += [_ch(f"diameter{e}_3d", eye=("right", "left")[e], type="Diameter", unit="mm",
                 coordinate_system=f"eye{e}") for e in range(2)]  # fmt: skip
    gaze_ch += diam
    # pupillometry: one datum per eye camera (eye 0 and eye 1 alternate), eye-camera norm_pos
    t_p = regular_times(duration_s, 400.0)
    rng = np.random.default_rng(seed + 1)
    prow = np.full((t_p.size, 7), NAN)
    prow[:, 0] = 0.9
    prow[:, 1:3] = rng.uniform(0.3, 0.7, (t_p.size, 2))
    eye = np.arange(t_p.size) % 2
    prow[eye == 0, 3], prow[eye == 1, 4] = 25.0, 26.0
    prow[eye == 0, 5], prow[eye == 1, 6] = 3.1, 3.2
    pup_ch = [_ch("confidence", eye="both", type="Confidence", unit="normalized")]
    pup_ch += [_ch(f"norm_pos_{a}", eye="both", type=f"Screen{a.upper()}", unit="normalized",
                   coordinate_system="eye") for a in "xy"] + diam  # fmt: skip
    t_f = regular_times(duration_s, 4.0)
    frow = np.column_stack([np.arange(t_f.size), np.full(t_f.size, 0.9), rng.uniform(0, 1, (t_f.size, 2)),
                            np.full(t_f.size, 1.2), np.full(t_f.size, 220.0), np.full(t_f.size, 3.0)])  # fmt: skip
    fix_ch = [_ch("fixation id", eye="both", type="com.pupil-labs.fixation.id"),
              _ch("confidence", eye="both", type="Confidence", unit="normalized")]  # fmt: skip
    fix_ch += [_ch(f"norm_pos_{a}", eye="both", type=f"Screen{a.upper()}", unit="normalized",
                   coordinate_system=world) for a in "xy"]  # fmt: skip
    fix_ch += [_ch("dispersion", eye="both", type="com.pupil-labs.fixation.dispersion", unit="degree"),
               _ch("duration", eye="both", type="com.pupil-labs.fixation.duration", unit="milliseconds"),
               _ch("method", eye="both", type="com.pupil-labs.fixation.method")]  # fmt: skip
    frame = 1 / 30  # world camera frame: recent_events pushes what arrived since the last frame
    version = {"pupil_lsl_relay_version": "2.3"}
    return [
        OutletPlan("pupil_capture", "Gaze", "double64", 0.0, "3f1c0a2e-gaze", gaze_ch, t, rows,
                   desc_values=version, burst_s=frame, gaze=True, x_px=x, y_px=y, valid=conf >= 0.6),
        OutletPlan("pupil_capture_pupillometry_only", "Gaze", "double64", 0.0, "3f1c0a2e-pupil", pup_ch,
                   t_p, prow, burst_s=frame),
        OutletPlan("pupil_capture_fixations", "Fixations", "double64", 0.0, "3f1c0a2e-fix", fix_ch, t_f,
                   frow, burst_s=frame),
    ]  # fmt: skip


def neon(duration_s: float, seed: int) -> list[OutletPlan]:
    t = regular_times(duration_s, 200.0)
    x, y = trajectory(t, seed)
    chans = [_ch(a, eye="both", metatype=f"Screen{a.upper()}", unit="pixels", coordinate_system="world")
             for a in "xy"]  # fmt: skip
    acq = {"manufacturer": "Pupil Labs", "model": "Neon", "serial_number": "abc123",
           "lsl_relay_version": "1.0", "session_id": "42", "clock_offset_ns": "0"}  # fmt: skip
    return [OutletPlan("pupil_labs_Gaze", "Gaze", "double64", 0.0, "neon-device-1_Gaze", chans, t,
                       np.column_stack([x, y]), acquisition=acq, gaze=True, x_px=x, y_px=y,
                       valid=np.ones(t.size, bool))]  # fmt: skip


def gazepoint(duration_s: float, seed: int) -> list[OutletPlan]:
    t = regular_times(duration_s, 60.0)
    x, y = trajectory(t, seed)
    blink = blink_mask(t)
    rows = np.column_stack([x / W_PX, y / H_PX, t, np.full(t.size, 0.2), np.arange(t.size) // 15,
                            (~blink).astype(float)])  # fmt: skip
    units = ["percent", "percent", "seconds", "seconds", "integer", "boolean"]
    labels = ["FPOGX", "FPOGY", "FPOGS", "FPOGD", "FPOGID", "FPOGV"]
    chans = [_ch(lab, unit=u, type="gaze") for lab, u in zip(labels, units)]
    return [OutletPlan("GazepointEyeTracker", "gaze", "float32", 60.0, "gazepoint000000000", chans, t,
                       rows.astype(np.float32), stamps="host-read", manufacturer="Gazepoint", gaze=True,
                       x_px=x, y_px=y, valid=~blink)]  # fmt: skip


GAZEPOINT36_LABELS = (
    "CNT EPOCHTIME TIME TIMETICK FPOGX FPOGY FPOGS FPOGD FPOGID FPOGV LPOGX LPOGY LPOGV RPOGX RPOGY RPOGV "
    "BPOGX BPOGY BPOGV LPCX LPCY LPD LPS LPV RPCX RPCY RPD RPS RPV BKID BKDUR BKPMIN CX CY CS USER"
).split()
GAZEPOINT36_UNITS = (
    "integer seconds seconds nanoseconds percent percent seconds seconds integer boolean percent percent "
    "boolean percent percent boolean percent percent boolean percent percent pixels scalar boolean percent "
    "percent pixels scalar boolean integer seconds integer pixels pixels integer seconds"
).split()


def gazepoint36(duration_s: float, seed: int) -> list[OutletPlan]:
    t = regular_times(duration_s, 150.0)
    x, y = trajectory(t, seed)
    blink = blink_mask(t)
    col = {lab: i for i, lab in enumerate(GAZEPOINT36_LABELS)}
    rows = np.full((t.size, 36), NAN)  # integer fields (CNT, *V, FPOGID, BKID, CS, TIMETICK) stay NaN
    rows[:, col["EPOCHTIME"]] = 1.7e9 + t
    rows[:, col["TIME"]] = 100.0 + t
    for p in ("FPOG", "LPOG", "RPOG", "BPOG"):
        rows[:, col[p + "X"]], rows[:, col[p + "Y"]] = x / W_PX, y / H_PX
        rows[blink, col[p + "X"]] = 0.0  # no tracked eye: 0.00000
        rows[blink, col[p + "Y"]] = 0.0
    rows[:, col["LPD"]], rows[:, col["RPD"]] = 21.5, 22.5
    rows[:, col["USER"]] = 0.0
    chans = [_ch(lab, unit=u, type="gaze") for lab, u in zip(GAZEPOINT36_LABELS, GAZEPOINT36_UNITS)]
    return [OutletPlan("GazepointEyeTracker", "gaze", "float32", 150.0, "gazepoint000000000", chans, t,
                       rows.astype(np.float32), stamps="host-read", manufacturer="Gazepoint", gaze=True,
                       x_px=x, y_px=y, valid=~blink)]  # fmt: skip


EYELINK_LABELS = ("leftEyeX", "leftEyeY", "rightEyeX", "rightEyeY", "leftPupilArea", "rightPupilArea",
                  "pixelsPerDegreeX", "pixelsPerDegreeY", "eyelink_timestamp", "LSL_timestamp")  # fmt: skip
EYELINK_PERIOD_S = 1 / 500 + 0.0005  # time.sleep(1/SR) after each push plus the loop's own work: ~400 Hz


def eyelink(duration_s: float, seed: int, *, eyes: str = "both") -> list[OutletPlan]:
    t = np.arange(int(duration_s / EYELINK_PERIOD_S)) * EYELINK_PERIOD_S
    x, y = trajectory(t, seed)
    blink = blink_mask(t)
    rows = np.zeros((t.size, 10))  # values = [0, 0, 0, 0, 0, 0, ppd, ppd, time, now]
    for eye, (cx, cy, cp) in (("left", (0, 1, 4)), ("right", (2, 3, 5))):
        if eyes in (eye, "both"):
            rows[:, cx], rows[:, cy], rows[:, cp] = x, y, 900.0
            rows[blink, cx] = rows[blink, cy] = -32768.0  # MISSING_DATA during a blink
            rows[blink, cp] = 0.0
    rows[:, 6], rows[:, 7] = 38.5, 38.2
    rows[:, 8] = np.round(t * 1000.0) + 123456
    rows[:, 9] = t  # replaced by the push time in the process
    chans = [_ch(lab, type="eyetracking") for lab in EYELINK_LABELS]
    return [OutletPlan("EyeLink", "Gaze", "double64", 500.0, "eyelink-testhost", chans, t, rows,
                       stamps="host-read", gaze=True, x_px=x, y_px=y, valid=~blink)]  # fmt: skip


def pylsl_examples(duration_s: float, seed: int) -> list[OutletPlan]:
    t = regular_times(duration_s, 100.0)
    rng = np.random.default_rng(seed)
    eeg = OutletPlan(
        "BioSemi", "EEG", "float32", 100.0, "myuid34234", [], t, rng.random((t.size, 8)).astype(np.float32)
    )  # SendData.py writes no channel metadata
    t_m = np.arange(0.2, duration_s, 0.7)
    markers = OutletPlan("MyMarkerStream", "Markers", "string", 0.0, "myuidw43536", [], t_m,
                         [[["Test", "Blah", "Marker", "XXX", "Testtest", "Test-1-2-3"][i % 6]]
                          for i in range(t_m.size)])  # fmt: skip
    return [eeg, markers]


BRIDGES = {
    "tobii": lambda d, s: tobii(d, s),
    "tobii_eyetracker_type": lambda d, s: tobii(d, s, stream_type="Eyetracker"),
    "tobii_60hz": lambda d, s: tobii(d, s, device_hz=60.0),
    "tobii_restart": lambda d, s: tobii(d, s, restart=True),
    "pupil_capture": pupil_capture,
    "neon": neon,
    "gazepoint": gazepoint,
    "gazepoint36": gazepoint36,
    "eyelink": lambda d, s: eyelink(d, s),
    "eyelink_left": lambda d, s: eyelink(d, s, eyes="left"),
    "eyelink_right": lambda d, s: eyelink(d, s, eyes="right"),
}


def plans_for(
    bridge: str, duration_s: float, seed: int = 0, *, with_examples: bool = True
) -> list[OutletPlan]:
    plans = BRIDGES[bridge](duration_s, seed)
    if with_examples:
        plans += pylsl_examples(duration_s, seed)
    return plans


def gaze_plan(plans: list[OutletPlan]) -> OutletPlan:
    return next(p for p in plans if p.gaze)


# ------------------------------------------------------------------------------------------------ XDF
def _xml_channels(channels: list[dict]) -> str:
    from xml.sax.saxutils import escape

    return "".join(
        "<channel>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in c.items()) + "</channel>"
        for c in channels
    )


def header_xml(p: OutletPlan) -> str:
    acq = "".join(f"<{k}>{v}</{k}>" for k, v in p.acquisition.items())
    desc = (f"<manufacturer>{p.manufacturer}</manufacturer>" if p.manufacturer else "") + (
        f"<acquisition>{acq}</acquisition>" if acq else ""
    )
    desc += "".join(f"<{k}>{v}</{k}>" for k, v in p.desc_values.items())
    if p.channels:
        desc += f"<channels>{_xml_channels(p.channels)}</channels>"
    return (
        f'<?xml version="1.0"?><info><name>{p.name}</name><type>{p.type}</type>'
        f"<channel_count>{p.n_channels if p.channels else _width(p)}</channel_count>"
        f"<nominal_srate>{p.rate_hz}</nominal_srate><channel_format>{p.fmt}</channel_format>"
        f"<source_id>{p.source_id}</source_id><version>1.1</version><created_at>1000.0</created_at>"
        f"<uid>{p.source_id}-uid</uid><session_id>default</session_id><hostname>testhost</hostname>"
        f"<desc>{desc}</desc></info>"
    )


def _width(p: OutletPlan) -> int:
    if p.fmt == "string":
        return 1
    return int(np.asarray(p.rows).shape[1])


# ------------------------------------------------------------------------------------------------ process
def _make_outlet(p: OutletPlan):
    import pylsl

    info = pylsl.StreamInfo(p.name, p.type, _width(p), p.rate_hz, p.fmt, p.source_id)
    desc = info.desc()
    if p.manufacturer:
        desc.append_child_value("manufacturer", p.manufacturer)
    for k, v in p.desc_values.items():
        desc.append_child_value(k, v)
    if p.acquisition:
        acq = desc.append_child("acquisition")
        for k, v in p.acquisition.items():
            acq.append_child_value(k, v)
    if p.channels:
        chans = desc.append_child("channels")
        for c in p.channels:
            ch = chans.append_child("channel")
            for k, v in c.items():
                ch.append_child_value(k, str(v))
    return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)


def _push_due(outlet, p: OutletPlan, i: int, due: int, t0: float, pushed: np.ndarray) -> None:
    import pylsl

    if p.stamps == "host-read":  # one sample at a time, stamped with the clock when it was "read"
        for k in range(i, due):
            now = pylsl.local_clock()
            row = np.array(p.rows[k], dtype=np.float64)
            if p.name == "EyeLink":
                row[9] = now
            outlet.push_sample(row.tolist(), now, True)
            pushed[k] = now
        return
    stamps = t0 + p.t[i:due]
    if p.fmt == "string":
        for k in range(i, due):
            outlet.push_sample(p.rows[k], float(t0 + p.t[k]))
    else:
        outlet.push_chunk(np.asarray(p.rows[i:due], np.float64).tolist(), list(stamps))
    pushed[i:due] = stamps


def run_plan(p: OutletPlan, box: list, t0: float, deadline: float, truth_path: Path | None) -> None:
    import pylsl

    outlet = box.pop()
    pushed = np.full(len(p.t), np.nan)
    i, away, t_burst = 0, p.away, 0.0
    while i < len(p.t) and time.monotonic() < deadline:
        now_rel = pylsl.local_clock() - t0
        if away is not None and now_rel >= away[0]:
            del outlet  # the app's "Unlink": the outlet goes away
            time.sleep(max(0.0, t0 + away[1] - pylsl.local_clock()))
            outlet = _make_outlet(p)  # "Link" again: same source id
            print("BACK", flush=True)
            away = None
            continue
        due = int(np.searchsorted(p.t, now_rel, side="right"))
        if p.burst_s and now_rel - t_burst < p.burst_s:  # Pupil Capture: once per world frame
            time.sleep(0.002)
            continue
        t_burst = now_rel
        if due > i:
            _push_due(outlet, p, i, due, t0, pushed)
            i = due
        time.sleep(0.0015 if p.stamps == "host-read" else 0.004)
    if truth_path is not None:
        tmp = truth_path.with_suffix(".tmp.npz")
        np.savez(tmp, t=pushed, x=p.x_px, y=p.y_px, valid=p.valid)
        os.replace(tmp, truth_path)  # whole or absent: the test waits for it to appear
        print("DONE", flush=True)
    while time.monotonic() < deadline:
        time.sleep(0.05)


def main() -> None:
    import threading

    import pylsl

    spec = json.loads(Path(sys.argv[1]).read_text())
    plans = plans_for(spec["bridge"], spec["duration_s"], spec.get("seed", 0),
                      with_examples=spec.get("examples", True))  # fmt: skip
    outlets = [[_make_outlet(p)] for p in plans]
    print("READY", flush=True)
    gaze = gaze_plan(plans)
    # the bridge starts once a consumer opens its gaze stream (the recorder), so the recording holds all of it
    deadline = time.monotonic() + float(spec.get("lifetime_s", 60.0))
    idx = plans.index(gaze)
    outlets[idx][0].wait_for_consumers(timeout=float(spec.get("lifetime_s", 60.0)))
    time.sleep(float(spec.get("start_delay_s", 0.0)))
    t0 = pylsl.local_clock()
    truth = Path(spec["truth"])
    threads = [
        threading.Thread(
            target=run_plan, args=(p, box, t0, deadline, truth if p is gaze else None), daemon=True
        )
        for p, box in zip(plans, outlets)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


if __name__ == "__main__":
    main()
