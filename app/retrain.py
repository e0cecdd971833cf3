"""One-click retrain: ``radgaze train`` in a separate process, its progress live, the new checkpoint in use.

:class:`RetrainPanel` starts ``python -m radgaze.training.cli SESSIONS --out RUN/retrain/<stamp> --config tiny
--progress-json - --no-bar`` in a :class:`QtCore.QProcess` (never on the UI thread: Qt reads the pipe from its
event loop and the panel only parses finished lines), shows a progress bar, the ETA and a live loss curve,
can cancel (terminate, then kill after :data:`KILL_AFTER_MS`), and when the run is done shows its evaluation
(``eval.json``) and makes its checkpoint the one in use by writing the pointer file ``RUN/current.json``.

The pointer and the rule that picks the model of a run (the pointer first, else ``RUN/checkpoints/best``,
``RUN/checkpoints/last``, else RUN itself when it is a checkpoint directory) live in
:mod:`radgaze.training.runs`, shared with ``radgaze eval`` and review; ``resolve_checkpoint`` here is that
rule (:func:`radgaze.training.runs.run_checkpoint`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.capture.base.errors import CheckpointError
from radgaze.training.runs import POINTER_NAME, is_checkpoint_dir, write_pointer
from radgaze.training.runs import run_checkpoint as resolve_checkpoint

__all__ = ["POINTER_NAME", "is_checkpoint_dir", "resolve_checkpoint", "write_pointer"]
KILL_AFTER_MS = 3000  # a cancelled trainer gets 3 s to exit on SIGTERM before SIGKILL
STDERR_KEEP_LINES = 40  # trainer log lines kept to explain a failure
CONFIGS = ("tiny", "paper")  # training/configs presets; a TOML path can be typed too
# Evaluation numbers shown when a run is done (training/evaluate.py keys), in this order.
EVAL_KEYS = (
    "attention_cc",
    "attention_nss",
    "pointing_game",
    "zero_shot_accuracy",
    "zero_shot_macro_f1",
    "retrieval_i2t_p_at_1",
    "retrieval_t2i_p_at_1",
    "report_retrieval_i2t_r_at_1",
    "report_retrieval_t2i_r_at_1",
    "n_cases",
)


# ------------------------------------------------------------------------------------------ Qt-free
def parse_progress_line(line: str) -> dict | None:
    """A trainer progress line ({"step","total","loss","eta_s"} or {"done": ...}) or None for other output."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and ("done" in obj or "step" in obj) else None


def train_arguments(
    sessions: str | os.PathLike, out: str | os.PathLike, config: str, extra: list[str]
) -> list[str]:
    """Arguments of ``python`` for one training run with JSON progress on stdout."""
    return [
        "-m",
        "radgaze.training.cli",
        str(sessions),
        "--out",
        str(out),
        "--config",
        config,
        "--progress-json",
        "-",
        "--no-bar",
        *extra,
    ]


def propose_sessions(files: list[Path]) -> tuple[Path | None, str]:
    """The folder to train on for a set of session files (the trainer reads one folder, recursively): the
    deepest folder holding all of them, and a note naming any other session files that folder also holds
    (empty when it holds exactly these). (None, why) without any file."""
    from radgaze.capture.store.reader import list_sessions

    wanted = sorted({Path(f).resolve() for f in files})
    if not wanted:
        return None, "no session files in the worklist yet: record or open sessions first"
    common = Path(os.path.commonpath([str(f.parent) for f in wanted]))
    others = [p for p in list_sessions(common) if p.resolve() not in wanted] if common.is_dir() else []
    if not others:
        return common, f"{len(wanted)} session file(s) of the worklist"
    return common, (
        f"{len(wanted)} session file(s) of the worklist; {common} also holds {len(others)} other session "
        f"file(s) (e.g. {others[0].name}), which the trainer will read too"
    )


def worklist_session_files(window: QtWidgets.QMainWindow, extra: list[Path] | None = None) -> list[Path]:
    """The session files behind ``window.worklist``'s items (kind "session"), plus ``extra`` (the file being
    recorded) when it exists."""
    items = getattr(getattr(window, "worklist", None), "items", []) or []
    files = [Path(i.path) for i in items if getattr(i, "kind", "") == "session"]
    files += [Path(p) for p in (extra or []) if Path(p).is_file()]
    return sorted(set(files))


def new_run_dir(run_dir: str | os.PathLike) -> Path:
    """RUN/retrain/<UTC stamp> (a fresh directory name)."""
    base = Path(run_dir) / "retrain"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out, k = base / stamp, 1
    while out.exists():
        out, k = base / f"{stamp}-{k}", k + 1
    return out


def format_eval(result: dict | None) -> str:
    """The evaluation of a finished retrain, 3 decimals, with its warning (training cases) first."""
    if not result:
        return "no evaluation (the run has no labels or held-out data)"
    lines = [f"⚠ {result['warning']}"] if result.get("warning") else []
    for k in EVAL_KEYS:
        v = result.get(k)
        if v is None:
            continue
        lines.append(f"{k:<28} {v:.3f}" if isinstance(v, float) else f"{k:<28} {v}")
    if result.get("evaluated_on"):
        lines.append(f"{'evaluated on':<28} {result['evaluated_on']}")
    return "\n".join(lines) or "evaluation has none of the usual metrics"


# ------------------------------------------------------------------------------------------ widget
class RetrainPanel(QtWidgets.QWidget):
    """Train on a folder of sessions in a child process; the result becomes RUN's current checkpoint.

    States: ``idle`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``."""

    state_changed = QtCore.Signal(str)
    progress = QtCore.Signal(int, int, float)  # step, total, loss
    checkpoint_changed = QtCore.Signal(str)  # the checkpoint directory now in use

    def __init__(
        self,
        sessions: str | os.PathLike,
        run_dir: str | os.PathLike,
        *,
        config: str = "tiny",
        extra_args: list[str] | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.extra_args = list(extra_args or [])
        self.state = "idle"
        self.out_dir: Path | None = None
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.done_line: dict | None = None
        self.eval_result: dict | None = None
        self.stderr_tail: list[str] = []
        self._stdout_buf = b""
        self._stderr_buf = b""
        self.process: QtCore.QProcess | None = None
        self._kill_timer = QtCore.QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        self._build_widgets(sessions, config)
        self._lay_out()

    def _build_widgets(self, sessions: str | os.PathLike, config: str) -> None:
        """The sessions and config fields, the buttons, the progress bar, status, loss plot, evaluation."""
        self.sessions_edit = QtWidgets.QLineEdit(str(sessions))
        self.sessions_note = QtWidgets.QLabel("")  # what the proposed folder holds
        self.sessions_note.setWordWrap(True)
        self.sessions_note.setStyleSheet("QLabel { color: #666 }")
        self.config_box = QtWidgets.QComboBox()
        self.config_box.setEditable(True)
        self.config_box.addItems(CONFIGS)
        self.config_box.setCurrentText(config)
        self.start_button = QtWidgets.QPushButton("Retrain")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = QtWidgets.QLabel("idle")
        self.status.setWordWrap(True)
        self.status.setMinimumHeight(3 * self.status.fontMetrics().height())  # long paths wrap, never clip
        self.status.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.loss_plot = pg.PlotWidget(background="#1e1e1e")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setMinimumHeight(160)
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#4fc3f7", width=2), symbol="o", symbolSize=4)
        self.eval_text = QtWidgets.QPlainTextEdit()
        self.eval_text.setReadOnly(True)
        self.eval_text.setMaximumHeight(150)
        self.eval_text.setStyleSheet("QPlainTextEdit { font-family: monospace }")
        self.eval_warning = QtWidgets.QLabel("")  # loud when the evaluation ran on training cases
        self.eval_warning.setWordWrap(True)
        self.eval_warning.setStyleSheet(
            "QLabel { color: white; background: #b71c1c; font-weight: bold; padding: 4px }"
        )
        self.eval_warning.setVisible(False)

    def _lay_out(self) -> None:
        form = QtWidgets.QFormLayout()
        form.addRow("Sessions", self.sessions_edit)
        form.addRow("", self.sessions_note)
        form.addRow("Config", self.config_box)
        form.addRow("Run", QtWidgets.QLabel(str(self.run_dir)))
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot, 1)
        layout.addWidget(QtWidgets.QLabel("Evaluation"))
        layout.addWidget(self.eval_warning)
        layout.addWidget(self.eval_text)

    # -- control --------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.state == "running"

    def start(self) -> None:
        if self.running:
            return
        self.out_dir = new_run_dir(self.run_dir)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.steps, self.losses, self.done_line, self.eval_result = [], [], None, None
        self.stderr_tail, self._stdout_buf, self._stderr_buf = [], b"", b""
        self.loss_curve.setData([], [])
        self.eval_text.setPlainText("")
        self.eval_warning.setVisible(False)
        self.bar.setRange(0, 0)  # busy until the first step says the total
        proc = QtCore.QProcess(self)
        env = QtCore.QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.setWorkingDirectory(str(Path.cwd()))
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self.process = proc
        args = train_arguments(
            self.sessions_edit.text(), self.out_dir, self.config_box.currentText(), self.extra_args
        )
        self._set_state("running", f"training into {self.out_dir.relative_to(self.run_dir)} …")
        proc.start(sys.executable, args)

    def cancel(self) -> None:
        """Stop the trainer: SIGTERM now, SIGKILL after KILL_AFTER_MS."""
        if not self.running or self.process is None:
            return
        self._set_state("cancelling", "cancelling …")
        self.process.terminate()
        self._kill_timer.start(KILL_AFTER_MS)

    def _kill(self) -> None:
        if self.process is not None and self.process.state() != QtCore.QProcess.ProcessState.NotRunning:
            self.process.kill()

    @property
    def pid(self) -> int:
        return int(self.process.processId()) if self.process is not None else 0

    # -- process output -------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        self._stdout_buf += bytes(self.process.readAllStandardOutput())
        *lines, self._stdout_buf = self._stdout_buf.split(b"\n")
        for raw in lines:
            obj = parse_progress_line(raw.decode("utf-8", "replace"))
            if obj is not None:
                self._on_progress(obj)

    def _read_stderr(self) -> None:
        self._stderr_buf += bytes(self.process.readAllStandardError())
        *lines, self._stderr_buf = self._stderr_buf.split(b"\n")
        self.stderr_tail = (self.stderr_tail + [x.decode("utf-8", "replace") for x in lines])[
            -STDERR_KEEP_LINES:
        ]

    def _on_progress(self, obj: dict) -> None:
        if obj.get("done"):
            self.done_line = obj
            return
        step, total = int(obj["step"]), int(obj.get("total") or 0)
        loss = float(obj["loss"]) if obj.get("loss") is not None else math.nan
        self.steps.append(step)
        self.losses.append(loss)
        self.loss_curve.setData(self.steps, self.losses)
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(step)
        eta = obj.get("eta_s")
        self.status.setText(
            f"step {step}/{total} · loss {loss:.4f}"
            + (f" · about {eta:.0f} s left" if eta is not None else "")
        )
        self.progress.emit(step, total, loss)

    def _on_error(self, error: QtCore.QProcess.ProcessError) -> None:
        if error == QtCore.QProcess.ProcessError.FailedToStart:
            self._set_state("failed", f"could not start the trainer ({self.process.errorString()})")

    def _on_finished(self, exit_code: int, _status: QtCore.QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        if self.state == "cancelling":
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self._set_state("cancelled", f"cancelled; partial run left in {self.out_dir}")
            return
        ok = exit_code == 0 and self.done_line is not None and self.done_line.get("ok", True)
        if not ok:
            why = (
                (self.done_line or {}).get("error")
                or "\n".join(self.stderr_tail[-5:])
                or f"exit code {exit_code}"
            )
            self._set_state("failed", f"training failed: {why}")
            return
        self._adopt_result()

    def _adopt_result(self) -> None:
        assert self.out_dir is not None
        eval_path = self.out_dir / "eval.json"
        self.eval_result = json.loads(eval_path.read_text()) if eval_path.is_file() else None
        self.eval_text.setPlainText(format_eval(self.eval_result))
        warning = (self.eval_result or {}).get("warning", "")
        self.eval_warning.setText(warning)
        self.eval_warning.setVisible(bool(warning))
        try:
            checkpoint = resolve_checkpoint(self.out_dir)
        except CheckpointError as exc:
            self._set_state("failed", f"training ended without a checkpoint: {exc}")
            return
        write_pointer(self.run_dir, checkpoint, source_run=str(self.out_dir))
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        shown = (
            checkpoint.relative_to(self.run_dir) if checkpoint.is_relative_to(self.run_dir) else checkpoint
        )
        self._set_state("done", f"done — checkpoint in use: {shown}")
        self.checkpoint_changed.emit(str(checkpoint))

    def _set_state(self, state: str, message: str) -> None:
        self.state = state
        self.status.setText(message)
        busy = state in ("running", "cancelling")
        self.start_button.setEnabled(not busy)
        self.cancel_button.setEnabled(state == "running")
        self.sessions_edit.setEnabled(not busy)
        self.config_box.setEnabled(not busy)
        self.state_changed.emit(state)

    def shutdown(self) -> None:
        """Kill a running trainer (window closing) and wait for it."""
        if self.process is not None and self.process.state() != QtCore.QProcess.ProcessState.NotRunning:
            self.process.kill()
            self.process.waitForFinished(5000)


class RetrainDialog(QtWidgets.QDialog):
    """The panel as a non-modal dialog (for the main window's and review's "Retrain…" action)."""

    def __init__(
        self,
        sessions: str | os.PathLike,
        run_dir: str | os.PathLike,
        *,
        config: str = "tiny",
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("radgaze — retrain")
        self.panel = RetrainPanel(sessions, run_dir, config=config, parent=self)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.panel)
        self.resize(520, 560)

    def closeEvent(self, ev) -> None:  # noqa: N802 (Qt override)
        self.panel.shutdown()
        super().closeEvent(ev)


def install_retrain_action(
    window: QtWidgets.QMainWindow,
    sessions: str | os.PathLike | Callable[[], list[Path]],
    run_dir: str | os.PathLike,
    *,
    config: str = "tiny",
    menu_title: str = "&Model",
) -> QtGui.QAction:
    """Add "Retrain on these sessions…" to ``window``'s menu (e.g. the main window) without touching its code.

    ``sessions`` is a folder, or a function returning the session files to train on (the record window passes
    the worklist's sessions and the one being recorded); the dialog then proposes their folder
    (:func:`propose_sessions`), worked out when the action is triggered, with a note on what it holds.
    The dialog is created once and kept on ``window.retrain_dialog``; connect
    ``window.retrain_dialog.panel.checkpoint_changed`` to reload an overlay model."""
    menu = next(
        (a.menu() for a in window.menuBar().actions() if a.menu() is not None and a.text() == menu_title),
        None,
    ) or window.menuBar().addMenu(menu_title)
    first = "" if callable(sessions) else sessions
    window.retrain_dialog = RetrainDialog(first, run_dir, config=config, parent=window)
    action = menu.addAction("Retrain on these sessions…")

    def show() -> None:
        panel = window.retrain_dialog.panel
        if callable(sessions) and not panel.running:
            folder, note = propose_sessions(sessions())
            panel.sessions_edit.setText("" if folder is None else str(folder))
            panel.sessions_note.setText(note)
            panel.start_button.setEnabled(folder is not None)
        window.retrain_dialog.show()

    action.triggered.connect(show)
    return action
