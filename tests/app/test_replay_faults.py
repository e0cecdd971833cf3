"""A damaged first case does not block ``replay --case 2`` (issue 24, item 8): before, the window opened the
first case whatever --case said, and a checksum error there refused an intact second case."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from replay_review_sessions import write_session

from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session


def _damage_gaze(path: Path, case_id: str) -> None:
    with h5py.File(path, "r") as f:
        info = f[f"cases/{case_id}/gaze"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_replay_case_2_opens_with_a_damaged_case_1(tmp_path: Path, qtbot):
    from radgaze.app.replay import ReplayWindow

    path = write_session(tmp_path / "s.h5", n_cases=2)
    first, second = SessionReader(path).case_ids
    _damage_gaze(path, first)
    info = describe_session(path)
    assert not info["valid"] and any(f"dataset cases/{first}/gaze:" in e for e in info["errors"])
    with pytest.raises(SessionFormatError, match=f"case '{first}'"):
        SessionReader(path).case(first)
    win = ReplayWindow(path, audio=False, first_case=second)
    qtbot.addWidget(win)
    assert win.case_box.currentText() == second and win.case.record.case_id == second
