"""The undo journal (capture/store/journal.py): a writer killed at any write outside SWMR mode (between cases,
annotating a closed file) leaves a file read as of its last finished flush: nothing closed is lost.

The kills are deterministic: a writer process whose journaled file kills the process itself at its k-th write,
counted from a chosen moment. Without the journal the same kills leave HDF5 metadata half-written (the list of
cases unreadable: the CI failure of stop 26, 1 in ~100 kills at random times); the tests show both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.store.integrity import lock_path
from radgaze.capture.store.journal import JournaledFile, journal_path, pending_undo, roll_back
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

KILL_AT_WRITE = r"""
import os, signal, sys
from radgaze.capture.store import journal
writes = [-10**9]
_write = journal.JournaledFile.write
def write_or_die(self, data):
    writes[0] += 1
    if writes[0] == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return _write(self, data)
journal.JournaledFile.write = write_or_die
"""

CASES_THEN_KILL = (
    KILL_AT_WRITE
    + r"""
import numpy as np
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry, ImageRef
from radgaze.capture.store.writer import SessionWriter
w = SessionWriter(sys.argv[1], live=True)
img = ImageRef(path="img.png", sha256="0" * 64, width=640, height=480)
hm = np.full((384, 512), 1.0 / (384 * 512), np.float32)
for i in range(12):
    if i == 8:
        writes[0] = 0  # count from here: case 7's end, case 8's beginning (the list of cases grows past 8)
    w.begin_case(f"c{i}", img, DisplayGeometry(), t_start=float(i))
    g = np.zeros(50, GAZE_DTYPE); g["t_lsl"] = i + np.arange(50) / 1000.0; g["flags"] = GAZE_VALID
    w.append_gaze(g)
    w.append_sentence(t_start=i, t_end=i, window_start=i, window_end=i, text="s", heatmap=hm, n_fixations=1)
    w.end_case(i + 0.5)
w.close()
"""
)


def _run(script: str, path: Path, kill_at: int) -> int:
    return subprocess.run([sys.executable, "-c", script, str(path), str(kill_at)], timeout=120).returncode


def _closed_cases_problem(path: Path, n_closed: int) -> str | None:
    try:
        with SessionReader(path) as r:
            for i in range(n_closed):
                c = r.case(f"c{i}")
                if not (c.complete and c.gaze.size == 50 and c.heatmaps.shape[0] == 1):
                    return f"c{i} came back incomplete"
    except SessionFormatError as exc:
        return str(exc)
    return None


@pytest.mark.slow
def test_a_writer_killed_at_any_write_between_cases_keeps_every_closed_case(tmp_path: Path):
    # write 2-35 and 46-49 of this stretch each left the eight closed cases unreadable without the journal
    kill_points = [2, 5, 9, 14, 20, 27, 35, 40, 47]
    paths = [tmp_path / f"k{k}" / "s.h5" for k in kill_points]
    for p in paths:
        p.parent.mkdir()
    with ThreadPoolExecutor(3) as pool:
        codes = list(pool.map(lambda a: _run(CASES_THEN_KILL, *a), zip(paths, kill_points)))
    assert codes == [-9] * len(kill_points)
    unjournaled = []
    for p in paths:
        assert pending_undo(p) is not None, "the kill came while a write was unfinished"
        before = p.read_bytes()
        assert _closed_cases_problem(p, 8) is None
        assert describe_session(p)["recovered_from_crash"] is True
        assert p.read_bytes() == before  # read through a rolled-back copy; the recording is left as it was
        bare = p.parent / "bare" / "s.h5"  # the same bytes without their journal
        bare.parent.mkdir()
        shutil.copyfile(p, bare)
        unjournaled.append(_closed_cases_problem(bare, 8))
    assert any(problem is not None for problem in unjournaled), "these kills no longer damage HDF5's metadata"


ANNOTATE_THEN_KILL = (
    KILL_AT_WRITE
    + r"""
from radgaze.capture.base.records import CaseAnnotation, LabelChoice
from radgaze.capture.store.edits import annotate_session_file
ann = CaseAnnotation(labels=[LabelChoice("Atelectasis", 4)], confirmed_steps=["dictate", "labels"],
                     label_set="reflacx", protocol="reflacx")
writes[0] = 0
annotate_session_file(sys.argv[1], "c1", ann, step="labels")
"""
)


@pytest.fixture(scope="module")
def annotated_once(tmp_path_factory) -> Path:
    from radgaze.capture.base.records import CaseAnnotation, LabelChoice
    from radgaze.capture.store.edits import annotate_session_file

    path = tmp_path_factory.mktemp("annotated") / "s.h5"
    assert _run(CASES_THEN_KILL, path, 10**6) == 0  # never killed: 12 closed cases
    first = CaseAnnotation(labels=[LabelChoice("Edema", 3)], confirmed_steps=["dictate", "labels"])
    annotate_session_file(path, "c1", first, step="labels")
    return path


@pytest.mark.parametrize("kill_at", [2, 5, 6])  # early, half-way and late in the edit
def test_annotating_killed_mid_write_keeps_the_file_and_the_next_annotation_repairs_it(
    tmp_path: Path, annotated_once: Path, kill_at: int
):
    from radgaze.capture.base.records import CaseAnnotation, LabelChoice
    from radgaze.capture.store.edits import annotate_session_file

    path = tmp_path / "s.h5"
    shutil.copyfile(annotated_once, path)
    assert _run(ANNOTATE_THEN_KILL, path, kill_at) == -9
    assert pending_undo(path) is not None
    with SessionReader(path) as r:  # as it was before: an edit is all or nothing
        assert r.recovered and len(r.case_ids) == 12
        assert [c.label for c in r.case("c1").annotation.labels] == ["Edema"]
    third = CaseAnnotation(labels=[LabelChoice("Mass", 5)], confirmed_steps=["dictate", "labels"])
    assert annotate_session_file(path, "c1", third, step="labels") == 2
    assert not journal_path(path).exists() and not lock_path(path).exists()
    with SessionReader(path) as r:  # repaired in place: opened plainly, not through a copy
        assert not r.recovered
        assert [c.label for c in r.case("c1").annotation.labels] == ["Mass"]
    assert describe_session(path)["valid"]


def test_an_unfinished_flush_is_undone_byte_for_byte(tmp_path: Path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["x"] = np.arange(5)
        for i in range(12):
            f.create_group(f"g{i}")
    journaled = JournaledFile(path)
    f = h5py.File(journaled, "a", libver="latest")
    f.flush()
    flushed = path.read_bytes()
    journaled.flush = lambda: None  # HDF5 writes everything but its flush never finishes, as when killed
    f.create_group("new").attrs["a"] = np.arange(100)
    f["x"].attrs["b"] = "overwritten metadata"
    f.flush()
    assert path.read_bytes() != flushed
    undo = pending_undo(path)
    assert undo is not None and undo[1], "HDF5 overwrote bytes of the flushed file"
    copy = tmp_path / "copy.h5"
    shutil.copyfile(path, copy)
    roll_back(copy, undo)
    assert copy.read_bytes() == flushed
    f.close()
    journaled.abandon()
