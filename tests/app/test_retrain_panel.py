"""One-click retrain: progress parsing, and the real trainer in a child process (tiny config): progress to done,
the pointer to the new checkpoint, cancel killing the process, failures reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from replay_review_sessions import write_session

from radgaze.app.retrain import (
    POINTER_NAME,
    RetrainPanel,
    format_eval,
    new_run_dir,
    parse_progress_line,
    resolve_checkpoint,
    train_arguments,
)


def test_parse_progress_line():
    assert parse_progress_line('{"step": 2, "total": 9, "loss": 1.5, "eta_s": 3.0}\n')["step"] == 2
    assert parse_progress_line('{"done": true, "ok": false, "error": "x"}')["done"] is True
    assert parse_progress_line("INFO training: epoch 1") is None
    assert parse_progress_line('{"run": "r", "finished": true}') is None  # the CLI's summary line
    assert parse_progress_line("{not json") is None


def test_train_arguments_and_run_dirs(tmp_path):
    args = train_arguments("S", tmp_path / "o", "tiny", ["--epochs", "1"])
    assert args[:3] == ["-m", "radgaze.training.cli", "S"]
    assert args[args.index("--progress-json") + 1] == "-" and args[-2:] == ["--epochs", "1"]
    a = new_run_dir(tmp_path)
    a.mkdir(parents=True)
    b = new_run_dir(tmp_path)
    assert a.parent == b.parent == tmp_path / "retrain" and a != b
    assert "attention_cc" in format_eval({"attention_cc": 0.25, "n_cases": 6})
    assert "no evaluation" in format_eval(None)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("retrain_sessions")
    for i in range(3):
        write_session(folder / f"s{i}.h5", 2, prefix=f"s{i}c")
    return folder


@pytest.mark.slow
def test_retrain_runs_to_done_and_switches_the_checkpoint(qtbot, sessions, tmp_path, artifacts_dir):
    run = tmp_path / "run"
    panel = RetrainPanel(sessions, run, config="tiny", extra_args=["--epochs", "2"])
    qtbot.addWidget(panel)
    panel.resize(520, 600)
    panel.show()
    states, steps = [], []
    panel.state_changed.connect(states.append)
    panel.progress.connect(lambda s, t, loss: steps.append((s, t)))
    with qtbot.waitSignal(panel.checkpoint_changed, timeout=120_000) as sig:
        panel.start()
        assert panel.running and not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    assert states == ["running", "done"], panel.status.text()
    total = steps[-1][1]
    assert total >= 2 and [s for s, _ in steps] == list(range(1, total + 1))
    assert panel.bar.maximum() == 1 and panel.bar.value() == 1
    x, y = panel.loss_curve.getData()
    assert list(x) == [s for s, _ in steps] and len(y) == total
    assert panel.done_line["ok"] is True and panel.done_line["steps"] == total
    checkpoint = Path(sig.args[0])
    assert checkpoint.parent.parent == panel.out_dir and checkpoint.name in ("best", "last")
    pointer = json.loads((run / POINTER_NAME).read_text())
    assert Path(pointer["checkpoint"]) == checkpoint.resolve() and pointer["run"] == str(panel.out_dir)
    assert resolve_checkpoint(run) == checkpoint.resolve()
    assert panel.eval_result is not None and "attention_cc" in panel.eval_text.toPlainText()
    # a handful of cases: no validation split, so the evaluation ran on training cases and says so loudly
    assert panel.eval_result["evaluated_on"] == "training cases"
    assert panel.eval_warning.isVisibleTo(panel) and "TRAINING CASES" in panel.eval_warning.text()
    assert panel.eval_text.toPlainText().startswith("⚠ EVALUATED ON TRAINING CASES")
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()
    panel.grab().save(str(artifacts_dir / "retrain_panel.png"))


def test_cancel_kills_the_trainer(qtbot, sessions, tmp_path):
    panel = RetrainPanel(sessions, tmp_path / "run", config="tiny", extra_args=["--epochs", "50"])
    qtbot.addWidget(panel)
    panel.start()
    qtbot.waitUntil(lambda: panel.pid > 0, timeout=10_000)
    pid = panel.pid
    os.kill(pid, 0)  # alive
    with qtbot.waitSignal(panel.state_changed, timeout=15_000, check_params_cb=lambda s: s == "cancelled"):
        panel.cancel()
    from PySide6 import QtCore

    assert panel.state == "cancelled"
    assert panel.process.state() == QtCore.QProcess.ProcessState.NotRunning
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "run" / POINTER_NAME).exists()  # a cancelled run never becomes the one in use


def test_training_failure_is_reported(qtbot, tmp_path):
    empty = tmp_path / "no_sessions"
    empty.mkdir()
    panel = RetrainPanel(empty, tmp_path / "run", config="tiny")
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.state_changed, timeout=60_000, check_params_cb=lambda s: s == "failed"):
        panel.start()
    assert panel.status.text().startswith("training failed:") and len(panel.status.text()) > 20
    assert not (tmp_path / "run" / POINTER_NAME).exists()


def test_retrain_action_in_a_main_window(qtbot, sessions, tmp_path):
    from PySide6 import QtWidgets

    from radgaze.app.retrain import install_retrain_action

    win = QtWidgets.QMainWindow()
    qtbot.addWidget(win)
    action = install_retrain_action(win, sessions, tmp_path / "run")
    assert not win.retrain_dialog.isVisible()
    action.trigger()
    assert win.retrain_dialog.isVisible() and win.retrain_dialog.panel.state == "idle"
    assert win.retrain_dialog.panel.sessions_edit.text() == str(sessions)
    win.retrain_dialog.close()


def test_retrain_in_the_record_window_proposes_the_worklists_sessions(qtbot, tmp_path):
    """Issue 10: the worklist's session files (and the one being recorded), not the output's parent folder
    searched recursively."""
    from radgaze.app.main_window import MainWindow
    from radgaze.app.retrain import install_retrain_action, propose_sessions, worklist_session_files

    read = tmp_path / "reading"
    write_session(read / "a.h5", 1, prefix="a")
    write_session(tmp_path / "unrelated" / "old.h5", 1, prefix="old")  # beside, under the output's parent
    output = read / "today.h5"
    win = MainWindow(title="record")
    qtbot.addWidget(win)
    win.open_folder(read)
    assert worklist_session_files(win, [output]) == [read / "a.h5"]  # today.h5 does not exist yet
    action = install_retrain_action(win, lambda: worklist_session_files(win, [output]), tmp_path / "run")
    action.trigger()
    panel = win.retrain_dialog.panel
    assert (
        panel.sessions_edit.text() == str(read.resolve())
        and "1 session file(s)" in panel.sessions_note.text()
    )
    assert "other" not in panel.sessions_note.text() and panel.start_button.isEnabled()
    win.retrain_dialog.close()
    folder, note = propose_sessions([read / "a.h5", tmp_path / "unrelated" / "old.h5"])
    assert folder == tmp_path.resolve() and "also holds" not in note
    write_session(tmp_path / "third.h5", 1, prefix="t")
    folder, note = propose_sessions([read / "a.h5", tmp_path / "unrelated" / "old.h5"])
    assert "also holds 1 other session file(s) (e.g. third.h5)" in note
    assert propose_sessions([]) == (
        None,
        "no session files in the worklist yet: record or open sessions first",
    )
    empty = MainWindow(title="record")
    qtbot.addWidget(empty)
    install_retrain_action(
        empty, lambda: worklist_session_files(empty, [output]), tmp_path / "run2"
    ).trigger()
    assert not empty.retrain_dialog.panel.start_button.isEnabled()
    empty.retrain_dialog.close()
