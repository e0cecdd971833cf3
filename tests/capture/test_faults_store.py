"""The session store under faults (issue 24): a second writer, bit rot, a full disk, a read-only folder.

Real processes, real HDF5 files, a real full disk (a small tmpfs, tests/capture/faults.py), real bit flips in
the bytes HDF5 stored. Bounded in time: every subprocess has a timeout far above what it needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults import chunk_spans, fill_disk, flip_bit, random_flips, read_only_folder, small_disk

from radgaze.capture.base.errors import SessionBusyError, StoreWriteError
from radgaze.capture.base.records import (
    GAZE_DTYPE,
    GAZE_VALID,
    CaseAnnotation,
    DisplayGeometry,
    ImageRef,
    LabelChoice,
    Shape,
)
from radgaze.capture.store.annotations import ANNOTATION_LOG
from radgaze.capture.store.edits import annotate_session_file
from radgaze.capture.store.integrity import DIGEST_ATTR, lock_path, writer_of
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.recovery import compact_session_file
from radgaze.capture.store.summary import describe_session
from radgaze.capture.store.writer import SessionWriter

IMAGE = ImageRef(path="img.png", sha256="ab" * 32, width=1024, height=800)
FLIPS = 150  # random single-bit flips in gaze and heatmap chunks (the issue tried 150)


def _gaze(t0: float, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.zeros(n, GAZE_DTYPE)
    g["t_lsl"] = t0 + np.arange(n) / 1000.0
    g["x_screen_px"], g["y_screen_px"] = rng.uniform(0, 1500, n), rng.uniform(0, 2000, n)
    g["x_img_px"], g["y_img_px"] = rng.uniform(0, 1024, n), rng.uniform(0, 800, n)
    g["pupil"], g["flags"] = 3.0, GAZE_VALID
    return g


def _session(path: Path, *, live: bool = False, n_gaze: int = 20000, revisions: int = 0) -> Path:
    with SessionWriter(path, live=live) as w:
        w.begin_case("c1", IMAGE, DisplayGeometry(), t_start=0.0)
        w.append_gaze(_gaze(0.0, n_gaze))
        for k in range(4):
            hm = np.zeros((400, 512), np.float32)
            hm[50 + 40 * k : 120 + 40 * k, 100:260] = 1.0
            w.append_sentence(
                t_start=k, t_end=k + 0.5, window_start=k - 1, window_end=k + 0.5, text=f"finding {k}.",
                heatmap=hm / hm.sum(), n_fixations=3,
            )  # fmt: skip
        w.end_case(20.0)
        for k in range(revisions):  # the annotation log: a few kB of JSON lines
            w.write_annotation("c1", _annotation(k), step="shapes")
    return path


def _annotation(k: int) -> CaseAnnotation:
    shapes = [Shape("ellipse", 100.0 + j, 120.0, 300.0 + j, 330.0, ("Nodule",), 4) for j in range(k + 1)]
    return CaseAnnotation(
        labels=[LabelChoice("Nodule", 4, f"revision {k}")], shapes=shapes, chest_box=(10.0, 10.0, 1000.0, 790.0),
        confirmed_steps=["dictate", "labels", "shapes"], label_set="reflacx", protocol="reflacx",
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- one writer
HOLDER = r"""
import sys, time
from radgaze.capture.base.records import DisplayGeometry, ImageRef
from radgaze.capture.store.writer import SessionWriter
w = SessionWriter(sys.argv[1], live=True)
w.begin_case("c1", ImageRef(path="i.png", sha256="0" * 64, width=64, height=64), DisplayGeometry(), t_start=0.0)
w.flush()
print("READY", flush=True)
time.sleep(120)
"""


def test_a_second_writer_gets_one_line_naming_the_first_and_the_live_file_is_untouched(tmp_path: Path):
    path = tmp_path / "s.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "READY", holder.stderr.read()
        size = path.stat().st_size
        with pytest.raises(SessionBusyError) as err:
            SessionWriter(path, live=True)
        message = str(err.value)
        assert f'"pid": {holder.pid}' in message and "expected no other writer" in message
        assert "\n" not in message
        assert path.stat().st_size == size  # the first writer's file was not cut
        with pytest.raises(SessionBusyError):  # a batch writer is refused the same way
            SessionWriter(path)
        assert writer_of(path) == f'{{"pid": {holder.pid}}}'
        second = subprocess.run(  # a second recorder on the same file: one line naming the first
            [sys.executable, "-m", "radgaze.app.cli", "record", str(path), "--images", str(tmp_path), "--sim",
             "--no-audio"], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f'already recording it ({{"pid": {holder.pid}}})' in second.stderr
    finally:
        holder.kill()
        holder.wait(30)
        holder.stdout.close()
        holder.stderr.close()
    assert lock_path(path).exists()  # kill -9 leaves the lock file, but nobody holds it any more
    assert writer_of(path) is None
    with pytest.raises(FileExistsError, match="a session file is written once"):
        SessionWriter(path, live=True)
    assert SessionReader(path).case("c1").case_id == "c1"


def test_a_lock_file_left_by_a_killed_batch_writer_is_taken_over(tmp_path: Path):
    path = tmp_path / "s.h5"
    lock_path(path).write_text('{"pid": 999999}')
    (tmp_path / ".s.h5.partial").write_bytes(b"half a file")
    _session(path, n_gaze=100)
    assert describe_session(path)["valid"]
    assert not lock_path(path).exists() and not (tmp_path / ".s.h5.partial").exists()


# ------------------------------------------------------------------------------------------- integrity
FLIP_TARGETS = {
    "gaze+heatmaps": ["cases/c1/gaze", "cases/c1/heatmaps"],
    "annotation": [
        f"cases/c1/{ANNOTATION_LOG}"
    ],  # schema 5: checksummed bytes (before: vlen strings, no filter)
}


@pytest.mark.parametrize("target", list(FLIP_TARGETS))
@pytest.mark.parametrize("live", [False, True], ids=["batch", "live-compacted"])
def test_every_random_bit_flip_is_reported_by_name(tmp_path: Path, live: bool, target: str):
    """The share of single-bit flips in stored gaze / heatmap chunks, and in the annotation log, that ``inspect``
    reports naming the dataset (goal >= 99 %; before schema 4, 123 of 150 gaze/heatmap flips went unseen; before
    schema 5 the annotation log's strings had no checksum: only a closed file's digest saw them, by no name)."""
    path = _session(tmp_path / "s.h5", live=live, revisions=6)
    intact = describe_session(path)
    assert intact["valid"], intact["errors"]
    spans = chunk_spans(path, FLIP_TARGETS[target])
    reported, unnamed = 0, []
    flipped = tmp_path / "flipped.h5"
    for dataset, offset, bit in random_flips(spans, FLIPS, seed=24):
        flip_bit(path, flipped, offset, bit)
        info = describe_session(flipped)
        if not info["valid"]:
            reported += 1
            if not any(f"dataset {dataset}:" in e for e in info["errors"]):
                unnamed.append((dataset, info["errors"]))
    print(f"bit flips reported: {reported}/{FLIPS} in {target} ({'live' if live else 'batch'})")
    assert reported / FLIPS >= 0.99
    assert not unnamed, unnamed[:3]


def test_a_changed_attribute_is_caught_by_the_content_digest(tmp_path: Path):
    import h5py

    path = _session(tmp_path / "s.h5", n_gaze=100)
    with h5py.File(path, "a") as f:
        assert len(f.attrs[DIGEST_ATTR]) == 64
        f["cases/c1"].attrs["t_start"] = 5.0  # no chunk checksum covers an attribute
    info = describe_session(path)
    assert not info["valid"] and info["errors"][0].startswith("content digest: expected sha256")
    # an annotation appended afterwards (radgaze annotate) keeps the damage visible: before, it stamped a new
    # digest over the changed attribute and inspect said valid
    annotate_session_file(path, "c1", _annotation(0), step="shapes")
    info = describe_session(path)
    assert not info["valid"] and info["errors"][0].startswith("content digest: expected sha256")
    intact = _session(tmp_path / "t.h5", n_gaze=100)
    annotate_session_file(intact, "c1", _annotation(0), step="shapes")
    assert describe_session(intact)["valid"]  # an intact file's digest follows the append


# ------------------------------------------------------------------------------------------- full disk
FILLER = r"""
import sys
import numpy as np
from radgaze.capture.base.errors import StoreWriteError
from radgaze.capture.base.records import (
    GAZE_DTYPE,
    GAZE_VALID,
    CaseAnnotation,
    DisplayGeometry,
    ImageRef,
    LabelChoice,
    Shape,
)
from radgaze.capture.store.annotations import ANNOTATION_LOG
from radgaze.capture.store.writer import SessionWriter
w = SessionWriter(sys.argv[1], live=True, flush_interval_s=0.0)
w.begin_case("c1", ImageRef(path="i.png", sha256="0" * 64, width=64, height=64), DisplayGeometry(), t_start=0.0)
rng, n = np.random.default_rng(0), 0
try:
    for i in range(100000):
        g = np.zeros(500, GAZE_DTYPE)
        g["t_lsl"] = n / 1000.0 + np.arange(500) / 1000.0
        g["x_screen_px"], g["flags"] = rng.normal(size=500), GAZE_VALID
        w.append_gaze(g)
        w.flush()
        n += 500
except StoreWriteError as exc:
    print(exc, file=sys.stderr)
    w.close()
    print(n)
    sys.exit(2)
"""


def test_a_full_disk_stops_a_live_writer_with_one_line_and_a_valid_file(tmp_path: Path):
    disk = tmp_path / "disk"
    with small_disk(disk, 3072):
        path = disk / "s.h5"
        done = subprocess.run(
            [sys.executable, "-c", FILLER, str(path)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "disk full" in lines[0] and "what was written before is kept" in lines[0]
        flushed = int(done.stdout.strip())
        info = describe_session(path)
        assert info["valid"], info["errors"]
        assert info["cases"][0]["gaze_samples"] == flushed > 0 and not info["cases"][0]["complete"]
        assert not lock_path(path).exists()


def test_compaction_on_a_full_disk_keeps_the_original_and_leaves_no_partial_file(tmp_path: Path):
    disk = tmp_path / "disk"
    with small_disk(disk, 4096):
        path = disk / "s.h5"
        w = SessionWriter(path, live=True)
        w.begin_case("c1", IMAGE, DisplayGeometry(), t_start=0.0)
        w.append_gaze(_gaze(0.0, 5000))
        w.end_case(5.0)
        fill_disk(disk, 1_200_000)  # room for the reserve, not for a copy of the file beside it
        w.close()
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "s.h5"]
        assert describe_session(path)["valid"]
        (disk / "filler.bin").unlink()
        fill_disk(disk, 1_000_000 + path.stat().st_size // 2)  # room for half a copy: the copy starts, fails
        compact_session_file(path)  # h5py reports it as RuntimeError or OSError; caught either way
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "s.h5"]
        assert describe_session(path)["cases"][0]["gaze_samples"] == 5000


def test_a_batch_writer_on_a_full_disk_leaves_nothing_and_says_so_in_one_line(tmp_path: Path):
    disk = tmp_path / "disk"
    with small_disk(disk, 2048):
        fill_disk(disk, 1_300_000)
        with pytest.raises(StoreWriteError, match="disk full") as err:
            _session(disk / "s.h5", n_gaze=200000)
        assert "\n" not in str(err.value)
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin"]


def test_a_read_only_folder_is_one_line(tmp_path: Path):
    with read_only_folder(tmp_path / "ro") as ro:
        with pytest.raises(StoreWriteError, match="expected a folder radgaze can write in") as err:
            SessionWriter(ro / "s.h5", live=True)
        assert "\n" not in str(err.value)


def test_the_checksummed_schema_4_file_copies_and_reads_elsewhere(tmp_path: Path):
    path = _session(tmp_path / "s.h5", n_gaze=1000)
    other = tmp_path / "copy" / "s.h5"
    other.parent.mkdir()
    shutil.copyfile(path, other)
    info = describe_session(other)
    assert info["valid"] and info["schema_version"] == 5
