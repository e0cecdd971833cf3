"""Session store: round trip, live SWMR writing, kill -9 crash safety, damaged and foreign files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import (
    FIXATION_DTYPE,
    GAZE_DTYPE,
    GAZE_VALID,
    VIEW_DTYPE,
    CaseRecord,
    DisplayGeometry,
    Finding,
    ImageRef,
    Sentences,
    Words,
)
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.store.reader import SessionReader, list_sessions
from radgaze.capture.store.schema import HEATMAP_FULL_SCALE, SCHEMA_VERSION
from radgaze.capture.store.summary import describe_session
from radgaze.capture.store.writer import SessionWriter

IMAGE = ImageRef(path="img.png", sha256="ab" * 32, width=1024, height=800)


def _gaze(t0: float, n: int, rate: float = 100.0) -> np.ndarray:
    g = np.zeros(n, GAZE_DTYPE)
    g["t_lsl"] = t0 + np.arange(n) / rate
    g["x_screen_px"] = np.arange(n)
    g["y_screen_px"] = 2 * np.arange(n)
    g["flags"] = GAZE_VALID
    return g


def _case(case_id: str, t0: float = 100.0) -> CaseRecord:
    h, w, scale = heatmap_grid(IMAGE.width, IMAGE.height)
    hm = np.zeros((1, h, w), np.float32)
    hm[0, 10, 20] = 1.0
    fix = np.zeros(2, FIXATION_DTYPE)
    fix["t_start"], fix["t_end"] = [t0, t0 + 1], [t0 + 0.3, t0 + 1.2]
    view = np.zeros(1, VIEW_DTYPE)
    view["t_lsl"], view["scale"] = t0, 0.5
    words = Words(
        np.array([t0, t0 + 0.5]), np.array([t0 + 0.4, t0 + 0.9]), ["Heart", "enlarged."], np.ones(2, "f4")
    )
    sentences = Sentences(
        np.array([t0, t0 + 2]),
        np.array([t0 + 0.9, t0 + 3]),
        np.array([t0 - 1, t0 + 1]),
        np.array([t0 + 0.9, t0 + 3]),
        ["Heart enlarged.", "Ünïcode sentence with no gaze."],
        np.array([0, -1], np.int32),
        np.array([2, 0], np.int32),
    )
    mask = np.zeros((h, w), bool)
    mask[5:15, 15:25] = True
    return CaseRecord(
        case_id=case_id,
        image=IMAGE,
        display=DisplayGeometry(),
        t_start=t0,
        t_end=t0 + 5,
        gaze=_gaze(t0, 500),
        fixations=fix,
        view_events=view,
        words=words,
        sentences=sentences,
        heatmaps=hm,
        heatmap_scale=scale,
        findings=[Finding("cardiomegaly", "heart", (1, 2, 3, 4), mask, 0)],
        labels=["cardiomegaly"],
        attrs={"synthetic": True},
    )


def test_heatmap_grid_keeps_aspect_and_never_upsamples():
    assert heatmap_grid(2048, 1024) == (256, 512, 4.0)
    assert heatmap_grid(300, 200) == (200, 300, 1.0)
    with pytest.raises(ValueError, match="positive"):
        heatmap_grid(0, 10)


def test_round_trip_batch_writer(tmp_path: Path):
    path = tmp_path / "s.h5"
    with SessionWriter(path, reader_id="R7", provenance={"tracker_name": "sim"}) as w:
        w.write_case(_case("c1"))
        w.write_case(_case("c2", 200.0))
        assert not path.exists(), "a batch session appears under its name only once complete"
    assert path.exists()
    with SessionReader(path) as r:
        assert r.schema_version == SCHEMA_VERSION
        assert r.reader_id == "R7" and r.provenance == {"tracker_name": "sim"}
        assert r.case_ids == ["c1", "c2"]
        c = r.case("c2")
    ref = _case("c2", 200.0)
    np.testing.assert_array_equal(c.gaze, ref.gaze)
    np.testing.assert_array_equal(c.fixations, ref.fixations)
    assert c.words.text == ["Heart", "enlarged."]
    assert c.sentences.text == ref.sentences.text
    assert c.sentence_heatmap(1) is None and c.sentence_heatmap(0)[10, 20] == 1.0
    assert c.findings[0].label == "cardiomegaly" and c.findings[0].mask.sum() == 100
    assert c.labels == ["cardiomegaly"] and c.attrs == {"synthetic": True}
    assert c.complete and c.duration_s == pytest.approx(5.0)


def test_describe_session_reports_counts_and_errors(tmp_path: Path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(_case("c1"))
    d = describe_session(path)
    assert d["valid"] and d["errors"] == [] and d["schema_version"] == SCHEMA_VERSION
    (c,) = d["cases"]
    assert (c["case_id"], c["gaze_samples"], c["fixations"], c["words"], c["sentences"], c["heatmaps"]) == (
        "c1",
        500,
        2,
        2,
        2,
        1,
    )
    json.dumps(d)  # JSON-ready
    with h5py.File(path, "a") as f:  # corrupt a heatmap so it no longer sums to 1 (a full-scale pixel)
        f["cases/c1/heatmaps"][0, 0, 0] = HEATMAP_FULL_SCALE
    d = describe_session(path)
    assert not d["valid"] and any("do not sum to 1" in e for e in d["errors"])
    assert any(e.startswith("content digest: expected sha256") for e in d["errors"])  # changed after closing


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty file"),
        (b"this is not hdf5 at all" * 100, "HDF5 cannot open"),
    ],
)
def test_garbage_files_raise_typed_error(tmp_path: Path, content: bytes, match: str):
    p = tmp_path / "bad.h5"
    p.write_bytes(content)
    with pytest.raises(SessionFormatError, match=match):
        SessionReader(p)


def test_foreign_and_future_files_raise_typed_error(tmp_path: Path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(SessionFormatError, match="expected a radgaze session"):
        SessionReader(foreign)
    future = tmp_path / "future.h5"
    with SessionWriter(future) as w:
        w.write_case(_case("c1"))
    with h5py.File(future, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SessionFormatError, match="not supported"):
        SessionReader(future)
    with pytest.raises(SessionFormatError, match="nothing there"):
        SessionReader(tmp_path / "missing.h5")


def test_truncated_file_raises_typed_error(tmp_path: Path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(_case("c1"))
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 1000):
        p = tmp_path / f"cut{cut}.h5"
        p.write_bytes(data[:cut])
        try:
            with SessionReader(p) as r:
                for cid in r.case_ids:
                    r.case(cid)
        except SessionFormatError:
            pass  # the only acceptable failure


def test_live_writer_is_readable_while_recording(tmp_path: Path):
    path = tmp_path / "live.h5"
    w = SessionWriter(path, live=True)
    w.begin_case("c1", IMAGE, DisplayGeometry(), t_start=0.0)
    w.append_gaze(_gaze(0.0, 100))
    w.flush()
    with SessionReader(path) as r:
        c = r.case("c1")
        assert c.gaze.size == 100 and not c.complete
    w.end_case(1.0)
    w.close()
    with SessionReader(path) as r:
        assert r.case("c1").complete


def test_writer_rejects_wrong_shapes(tmp_path: Path):
    with SessionWriter(tmp_path / "s.h5") as w:
        with pytest.raises(RuntimeError, match="begin_case"):
            w.append_gaze(_gaze(0, 3))
        w.begin_case("c", IMAGE, DisplayGeometry(), t_start=0)
        with pytest.raises(ValueError, match="missing"):
            w.append_gaze(np.zeros(3, dtype=[("t", "f8")]))
        with pytest.raises(ValueError, match="heatmap: expected shape"):
            w.append_sentence(
                t_start=0,
                t_end=1,
                window_start=0,
                window_end=1,
                text="x",
                heatmap=np.ones((3, 3)),
                n_fixations=1,
            )
        with pytest.raises(ValueError, match="int16"):
            w.append_audio(np.zeros(10, np.float32), 0.0)
        w.end_case(1.0)
    with pytest.raises(FileExistsError):
        SessionWriter(tmp_path / "s.h5")


WRITER_SCRIPT = r"""
import sys, time, numpy as np
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry, ImageRef
from radgaze.capture.store.writer import SessionWriter
path, n_done = sys.argv[1], int(sys.argv[2])
img = ImageRef(path="img.png", sha256="0" * 64, width=640, height=480)
w = SessionWriter(path, live=True, flush_interval_s=0.2)
t = 0.0
def case(cid, seconds):
    global t
    w.begin_case(cid, img, DisplayGeometry(), t_start=t)
    for _ in range(int(seconds * 50)):
        g = np.zeros(20, GAZE_DTYPE); g["t_lsl"] = t + np.arange(20) / 1000.0; g["flags"] = GAZE_VALID
        w.append_gaze(g); t += 0.02
        hm = np.full((384, 512), 1.0 / (384 * 512), np.float32)
        if int(t * 50) % 25 == 0:
            w.append_sentence(t_start=t, t_end=t, window_start=t, window_end=t, text="s", heatmap=hm, n_fixations=1)
        print(f"{t:.3f}", flush=True)
        time.sleep(0.02)
    w.end_case(t)
for i in range(n_done):
    case(f"done{i}", 0.5)
print("LIVE", flush=True)
case("live", 1000)
"""


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(4))
def test_kill_minus_9_keeps_earlier_cases_and_loses_at_most_a_second(tmp_path: Path, trial: int):
    path = tmp_path / "crash.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), "2"], stdout=subprocess.PIPE, text=True
    )
    last_t = 0.0
    live_seen = False
    deadline = time.monotonic() + 60
    kill_after = 1.0 + 0.7 * trial  # seconds into the live case
    t_live = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "LIVE":
            live_seen, t_live = True, time.monotonic()
            continue
        last_t = float(line)
        if live_seen and time.monotonic() - t_live > kill_after:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with SessionReader(path) as r:
        assert r.case_ids == ["done0", "done1", "live"]
        for cid in ("done0", "done1"):
            c = r.case(cid)
            assert c.complete and c.gaze.size == 25 * 20
            assert c.heatmaps.shape[0] == len(c.sentences)
        live = r.case("live")
    assert not live.complete
    assert live.gaze.size > 0
    assert last_t - live.gaze["t_lsl"][-1] <= 1.0, "more than the last second was lost"
    assert describe_session(path)["valid"]


def test_list_sessions_finds_files_recursively(tmp_path: Path):
    (tmp_path / "a").mkdir()
    for p in (tmp_path / "x.h5", tmp_path / "a" / "y.h5"):
        with SessionWriter(p) as w:
            w.write_case(_case("c"))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_sessions(tmp_path)] == ["y.h5", "x.h5"]


@pytest.fixture(scope="module")
def session_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(_case("c1"))
    return path.read_bytes()


# derandomize: libhdf5 itself can loop forever on some byte-flipped files (seen once in the header's attribute
# read; a C loop no timeout interrupts), so the examples are fixed by the test's source: the same 150 every run.
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255), st.booleans()), min_size=1, max_size=8))
def test_fuzzed_session_files_raise_only_the_typed_error(tmp_path, session_bytes, flips):
    """Byte flips (mostly in the metadata near the start) either read or raise SessionFormatError."""
    data = bytearray(session_bytes)
    for where, value, in_header in flips:
        span = min(len(data), 4096) if in_header else len(data)
        data[int(where * (span - 1))] = value
    p = tmp_path / "fuzzed.h5"
    p.write_bytes(bytes(data))
    try:
        describe_session(p)
    except SessionFormatError:
        pass


TRANSITION_WRITER = r"""
import sys, numpy as np
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry, ImageRef
from radgaze.capture.store.writer import SessionWriter
w = SessionWriter(sys.argv[1], live=True, flush_interval_s=0.05)
img = ImageRef(path="img.png", sha256="0" * 64, width=640, height=480)
hm = np.full((384, 512), 1.0 / (384 * 512), np.float32)
t, i = 0.0, 0
while True:  # short cases: most of the time is spent at case boundaries, outside SWMR mode
    w.begin_case(f"c{i:04d}", img, DisplayGeometry(), t_start=t)
    for _ in range(3):
        g = np.zeros(50, GAZE_DTYPE); g["t_lsl"] = t + np.arange(50) / 1000.0; g["flags"] = GAZE_VALID
        w.append_gaze(g); t += 0.05
        w.append_sentence(t_start=t, t_end=t, window_start=t, window_end=t, text="s", heatmap=hm, n_fixations=1)
    w.end_case(t)
    print(i, flush=True)
    i += 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(8))
def test_kill_minus_9_at_case_boundaries_keeps_every_closed_case(tmp_path: Path, trial: int):
    """A writer killed while it switches cases (file briefly out of SWMR mode) still leaves every closed case
    readable: the reader goes through a copy with the superblock's 'open for writing' flags cleared."""
    rng = np.random.default_rng(trial)
    path = tmp_path / "s.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRANSITION_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    closed = -1
    while closed < 3 + trial:
        closed = int(proc.stdout.readline())
    time.sleep(float(rng.uniform(0, 0.05)))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with SessionReader(path) as r:
        ids = r.case_ids
        for cid in [f"c{i:04d}" for i in range(closed + 1)]:
            c = r.case(cid)
            assert c.complete and c.gaze.size == 150 and c.heatmaps.shape[0] == 3
    assert ids[: closed + 1] == [f"c{i:04d}" for i in range(closed + 1)]
    assert describe_session(path)["cases"][0]["complete"]
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # the recording itself was not modified by reading


def test_lookup3_reproduces_hdf5_superblock_checksums(tmp_path: Path):
    from radgaze.capture.store.recovery import lookup3

    for i in range(3):
        p = tmp_path / f"f{i}.h5"
        with h5py.File(p, "w", libver="latest") as f:
            f["x"] = np.arange(i + 1)
        head = p.read_bytes()[:48]
        assert lookup3(head[:44]) == int.from_bytes(head[44:48], "little")
    assert lookup3(b"") == 0xDEADBEEF  # lookup3's documented value for empty input and initval 0


def test_file_left_open_outside_swmr_is_read_through_a_repaired_copy(tmp_path: Path):
    """Simulate a writer killed between cases: the superblock still says 'open for writing'."""
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_case(_case("c1"))
    data = bytearray(path.read_bytes())
    from radgaze.capture.store.recovery import lookup3

    data[11] = 0x01  # H5F_SUPER_WRITE_ACCESS, as a killed non-SWMR writer leaves it
    data[44:48] = lookup3(bytes(data[:44])).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(OSError):
        h5py.File(path, "r")
    with SessionReader(path) as r:
        assert r.recovered and r.case("c1").complete
    assert describe_session(path)["recovered_from_crash"] is True
    assert path.read_bytes()[11] == 0x01  # the original is left as it was
