"""The viewer's keys and mouse gestures, one table for every window (view, record, demo; replay and review
install the same viewing keys), and Help ▸ Keyboard shortcuts, which shows that table.

Keys follow the habits of PACS viewers where there is one (F fit, I invert, 1 one-to-one, 0 back to the file's
window, PgUp/PgDown between cases), single letters for the chest presets (L, M, B).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.app.state import WINDOW_PRESETS, WL_DRAG_MODES, WL_DRAG_PACS, WL_DRAG_REFLACX, ViewerState

SETTINGS_WL_DRAG = "viewer/wl_drag_mode"


@dataclass(frozen=True)
class Key:
    keys: tuple[str, ...]
    what: str


def viewing_keys(state: ViewerState) -> list[tuple[Key, object]]:
    """The keys every image window has, with their slots on ``state``."""
    out: list[tuple[Key, object]] = [
        (Key(("F",), "fit the image to the window"), state.fit),
        (Key(("1",), "one image pixel per screen pixel"), state.one_to_one),
        (Key(("I",), "invert grey levels"), lambda: state.set_invert(not state.invert)),
        (
            Key(("0",), "the file's own window (its W/L tags, else the histogram window)"),
            lambda: state.apply_preset("default"),
        ),
    ]
    for name, preset in WINDOW_PRESETS.items():
        if preset.key:
            out.append((Key((preset.key,), f"{preset.label} window"), lambda n=name: state.apply_preset(n)))
    out.append(
        (
            Key(("G",), "show/hide the gaze cursor (set-up; hidden while reading)"),
            lambda: state.set_gaze_cursor_visible(not state.gaze_cursor_visible),
        )
    )
    return out


MOUSE_HELP = (
    ("Right-drag", "window/level: {drag}"),
    ("Wheel", "zoom around the cursor"),
    ("Middle-drag, Shift + left-drag", "pan"),
    ("Double-click", "fit"),
)


def install_keys(window: QtWidgets.QWidget, bindings: list[tuple[Key, object]]) -> dict[str, QtGui.QShortcut]:
    """One window-wide QShortcut per key; returns {key: shortcut}."""
    shortcuts = {}
    for key, slot in bindings:
        for k in key.keys:
            sc = QtGui.QShortcut(QtGui.QKeySequence(k), window)
            sc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)
            shortcuts[k] = sc
    return shortcuts


def install_viewing_keys(window: QtWidgets.QMainWindow, state: ViewerState, extra: tuple[Key, ...] = ()):
    """The viewing keys of every image window on ``state`` plus Help ▸ Keyboard shortcuts listing them (and
    ``extra``, keys the window installs itself); returns {key: shortcut}."""
    from radgaze.app.qtapp import install_quit_action

    bindings = viewing_keys(state)
    shortcuts = install_keys(window, bindings)
    install_quit_action(window)  # File first, Help last, as in every window
    install_help_menu(window, lambda: [*(k for k, _ in bindings), *extra])
    return shortcuts


def shortcuts_html(bindings: list[Key], drag_mode: str) -> str:
    """The Help ▸ Keyboard shortcuts text: keys, mouse, and how right-drag is set."""
    rows = "".join(f"<tr><td><b>{' / '.join(k.keys)}</b></td><td>{k.what}</td></tr>" for k in bindings)
    rows += "<tr><td><b>Ctrl+Q</b></td><td>quit (a recording is finished and saved)</td></tr>"
    mouse = "".join(
        f"<tr><td><b>{m}</b></td><td>{w.format(drag=WL_DRAG_MODES[drag_mode])}</td></tr>"
        for m, w in MOUSE_HELP
    )
    return (
        f"<h3>Keys</h3><table cellspacing=4>{rows}</table>"
        f"<h3>Mouse</h3><table cellspacing=4>{mouse}</table>"
        "<p>Right-drag directions: View ▸ Right-drag (kept between sessions).</p>"
    )


def install_help_menu(window: QtWidgets.QMainWindow, bindings_fn) -> QtGui.QAction:
    """Help ▸ Keyboard shortcuts (F1) showing ``bindings_fn()`` (a list of Key)."""
    menu = window.menuBar().addMenu("&Help")
    action = menu.addAction("Keyboard shortcuts")
    action.setShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.HelpContents))
    action.setToolTip("Every key and mouse gesture of this window")

    def show() -> None:
        state = getattr(window, "state", None)
        mode = getattr(state, "wl_drag_mode", WL_DRAG_PACS)
        box = QtWidgets.QMessageBox(window)
        box.setWindowTitle("radgaze — keyboard shortcuts")
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        box.setText(shortcuts_html(bindings_fn(), mode))
        box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Close)
        window.shortcuts_dialog = box
        box.open()

    action.triggered.connect(lambda _=False: show())
    window.help_action = action
    return action


def install_drag_mode_menu(window: QtWidgets.QMainWindow, state: ViewerState) -> dict[str, QtGui.QAction]:
    """View ▸ Right-drag: the two W/L drag conventions, exclusive, remembered in QSettings."""
    from radgaze.app.qtapp import settings

    saved = str(settings().value(SETTINGS_WL_DRAG, WL_DRAG_PACS))
    state.set_wl_drag_mode(saved if saved in WL_DRAG_MODES else WL_DRAG_PACS)
    menu = window.menuBar().addMenu("&View").addMenu("Right-drag")
    group = QtGui.QActionGroup(window)
    actions = {}
    for mode in (WL_DRAG_PACS, WL_DRAG_REFLACX):
        a = menu.addAction(WL_DRAG_MODES[mode])
        a.setCheckable(True)
        a.setChecked(mode == state.wl_drag_mode)
        group.addAction(a)

        def chosen(_=False, m=mode) -> None:
            state.set_wl_drag_mode(m)
            settings().setValue(SETTINGS_WL_DRAG, m)

        a.triggered.connect(chosen)
        actions[mode] = a
    return actions
