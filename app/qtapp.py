"""The one QApplication of a windowed command and its lifecycle, shared by every window (view, record, demo,
replay, review).

- :func:`ensure_qapp`: a clear one-line error (exit 2) instead of Qt's abort when there is no display, or when
  ``DISPLAY`` names an X server nobody answers on.
- :func:`install_quit_action`: File ▸ Quit (Ctrl-Q) in a window.
- :func:`run_until_closed`: the event loop of a command. It ends when the command's last window is closed,
  on File ▸ Quit, on Ctrl-C (SIGINT) and on SIGTERM; each closes the windows first so their ``closeEvent``
  finishes what they record. Qt 6 emits ``lastWindowClosed`` only inside ``QApplication.exec()``, not inside a
  local ``QEventLoop`` (which in-process callers need, so a longer-lived application stays usable); so the
  windows are watched here instead.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import socket
import sys
from pathlib import Path

from radgaze.capture.base.errors import ConfigError, RadgazeError

# Python runs signal handlers only between bytecodes; while Qt's C++ loop waits, a timer this often lets
# Ctrl-C in (a quarter second is not noticeable to a person pressing it).
SIGNAL_POLL_MS = 250
X11_TCP_PORT_BASE = 6000  # X11: display N listens on TCP port 6000 + N (X(7), "DISPLAY NAMES")
NON_WINDOW_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")


def has_display(environ: dict | None = None, platform: str = sys.platform) -> bool:
    """True when Qt can open windows: a platform plugin was chosen, or an X11/Wayland display is set (Linux);
    other systems always have their native windowing."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return True
    return bool(env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def parse_x_display(display: str) -> tuple[str, int]:
    """(host, display number) of an X11 ``DISPLAY`` value ``[host]:N[.screen]``; ValueError otherwise."""
    host, sep, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if not sep or not number.isdigit():
        raise ValueError(f"expected DISPLAY as [host]:N[.screen], got {display!r}")
    return host, int(number)


def x_server_answers(display: str, timeout_s: float = 2.0) -> bool:
    """Whether an X server accepts a connection for ``display`` (the local socket, abstract or in
    /tmp/.X11-unix, or TCP 6000 + N for a host). Only the connection is tried; no X protocol is spoken."""
    try:
        host, number = parse_x_display(display)
    except ValueError:
        return False
    if host in ("", "unix") or host.startswith("/"):
        path = host if host.startswith("/") else f"/tmp/.X11-unix/X{number}"
        for address in (f"\0{path}", path):  # Linux abstract namespace first, as libxcb tries it
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout_s)
                s.connect(address)
                return True
        if host == "":
            host = "localhost"  # Xlib falls back to TCP on localhost for ":N"
        else:
            return False
    try:
        with socket.create_connection((host, X11_TCP_PORT_BASE + number), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_display(environ: dict | None = None, platform: str = sys.platform) -> None:
    """ConfigError (exit 2, one line) when no window can be opened: no display set, or an X ``DISPLAY`` that
    no server answers on (Qt would abort with exit 134 and a misleading xcb-cursor message)."""
    env = os.environ if environ is None else environ
    if not has_display(env, platform):
        raise ConfigError(
            "no display to open a window on (DISPLAY/WAYLAND_DISPLAY unset); run it under "
            "`xvfb-run`, set QT_QPA_PLATFORM=offscreen for an unattended run, or use --headless where offered"
        )
    if not platform.startswith("linux"):
        return
    qpa = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0]
    if qpa in NON_WINDOW_PLATFORMS or qpa.startswith("wayland"):
        return
    display = env.get("DISPLAY", "")
    if not display:
        return  # Wayland only: Qt picks its Wayland plugin
    if not x_server_answers(display):
        raise ConfigError(
            f"cannot open display {display!r}: no X server answers there; start one (or `xvfb-run`), fix "
            "DISPLAY, or set QT_QPA_PLATFORM=offscreen for an unattended run"
        )
    check_xcb_libraries()


# The libraries Qt 6's X11 (xcb) platform plugin loads and the Debian/Ubuntu packages that hold them (Qt's "Qt for
# X11 Requirements" page; the same list as the README's apt-get line). Without one Qt aborts (exit 134) with
# "Could not load the Qt platform plugin "xcb" ... xcb-cursor0 or libxcb-cursor0 is needed".
XCB_LIBRARY_PACKAGES = {
    "xcb-cursor": "libxcb-cursor0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xcb-xinerama": "libxcb-xinerama0",
    "EGL": "libegl1",
    "GL": "libgl1",
    "fontconfig": "libfontconfig1",
    "dbus-1": "libdbus-1-3",
}


def missing_packages(libraries: dict[str, str], find=None) -> list[str]:
    """The packages of ``libraries`` ({library name as ``ctypes.util.find_library`` takes it: package}) whose
    library ``find`` (default: ``ctypes.util.find_library``) does not find, in the dict's order."""
    if find is None:
        import ctypes.util

        find = ctypes.util.find_library
    return [package for name, package in libraries.items() if not find(name)]


def check_xcb_libraries(libraries: dict[str, str] | None = None, find=None) -> None:
    """ConfigError (exit 2, one line naming the Debian packages) when a library of Qt's xcb plugin is missing,
    before Qt would abort with its own crash text."""
    missing = missing_packages(XCB_LIBRARY_PACKAGES if libraries is None else libraries, find)
    if missing:
        raise ConfigError(
            f"Qt's X11 (xcb) platform needs libraries that are not installed; install the Debian/Ubuntu "
            f"packages {' '.join(missing)} (apt-get install -y {' '.join(missing)}), or set "
            "QT_QPA_PLATFORM=offscreen for an unattended run"
        )


def ensure_qapp(name: str):
    """The existing QApplication or a new one (with the window icon); ConfigError (exit 2, one line) when no
    display can be opened."""
    from PySide6 import QtWidgets

    check_display()
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication([name])
        app.setApplicationName("radgaze")
        app.setOrganizationName("radgaze")
        app.setDesktopFileName("radgaze")
        set_window_icon(app)
    collect_garbage_on_main_thread(app)
    return app


def set_window_icon(app) -> None:
    """The packaged icon (assets/radgaze.svg) on every window of the application."""
    from importlib import resources

    from PySide6 import QtGui

    from radgaze.assets import asset_path

    with resources.as_file(asset_path("radgaze.svg")) as path:
        icon = QtGui.QIcon(str(path))
    if not icon.isNull():
        app.setWindowIcon(icon)


@functools.cache
def viewer_style_sheet() -> str:
    """assets/radgaze.qss: the corner text and the recording counter."""
    from radgaze.assets import asset_text

    return asset_text("radgaze.qss")


def settings():
    """radgaze's QSettings (window geometry, the W/L drag convention); the same store whether or not the
    application was made by :func:`ensure_qapp` (tests point XDG_CONFIG_HOME elsewhere)."""
    from PySide6 import QtCore

    return QtCore.QSettings("radgaze", "radgaze")


def restore_window_geometry(window, key: str, size_px: tuple[int, int]) -> None:
    """The saved geometry of this kind of window (``key``), else ``size_px`` shrunk to the screen's free area
    (so a 1366 x 768 laptop shows the whole window)."""
    from PySide6 import QtGui

    saved = settings().value(f"geometry/{key}")
    if saved is not None and window.restoreGeometry(saved):
        return
    screen = QtGui.QGuiApplication.primaryScreen()
    w, h = size_px
    if screen is not None:
        avail = screen.availableGeometry()
        w, h = min(w, avail.width()), min(h, avail.height())
    window.resize(w, h)


def save_window_geometry(window, key: str) -> None:
    """Remember ``window``'s geometry for the next window of this kind (call from closeEvent)."""
    settings().setValue(f"geometry/{key}", window.saveGeometry())


# ------------------------------------------------------------------------------------------ quitting
def quit_all(app=None, ask: bool = False) -> None:
    """Close every top-level window (each finishes what it records in its closeEvent), then leave every event
    loop. What File ▸ Quit, Ctrl-Q (``ask``: a window with unconfirmed work asks first), Ctrl-C and SIGTERM
    (which never ask: nobody may be at the screen) do."""
    from PySide6 import QtWidgets

    app = app or QtWidgets.QApplication.instance()
    if app is None:
        return
    windows = [w for w in app.topLevelWidgets() if w.isVisible()]
    if ask and not all(close_confirmed(w) for w in windows):
        return
    app._radgaze_quitting = True  # the windows' own closeEvent asks nothing again
    try:
        for window in windows:
            window.close()
    finally:
        app._radgaze_quitting = False
    loop = getattr(app, "_radgaze_loop", None)
    if loop is not None:
        loop.quit()
    app.quit()


def close_confirmed(window) -> bool:
    """True when ``window`` may close: it has no ``quit_question()`` (a sentence naming unconfirmed work, "" for
    none), it names none, the application is already quitting, or the person answers Quit to the question."""
    from PySide6 import QtWidgets

    question = getattr(window, "quit_question", None)
    app = QtWidgets.QApplication.instance()
    said = question() if callable(question) else ""
    if not said or getattr(app, "_radgaze_quitting", False):
        return True
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "Quit radgaze?", said, parent=window)
    box.setInformativeText("Quit loses it; Keep annotating goes back to the step (Enter confirms it).")
    quit_button = box.addButton("Quit", QtWidgets.QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton("Keep annotating", QtWidgets.QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep)
    box.setEscapeButton(keep)
    box.exec()
    if box.clickedButton() is quit_button:
        return True
    window.activateWindow()  # back to the step, keys and all
    return False


def install_quit_action(window, menu=None):
    """File ▸ Quit with Ctrl-Q (the platform's Quit key) in ``window``; returns the action. ``menu`` is the
    window's File menu (found by its title, else made)."""
    from PySide6 import QtGui

    if menu is None:
        menu = next(
            (
                a.menu()
                for a in window.menuBar().actions()
                if a.menu() is not None and a.text().replace("&", "") == "File"
            ),
            None,
        ) or window.menuBar().addMenu("&File")
    existing = getattr(window, "quit_action", None)
    if existing is not None:
        return existing
    menu.addSeparator()
    action = menu.addAction("Quit")
    action.setShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Quit))
    if action.shortcut().isEmpty():
        action.setShortcut(QtGui.QKeySequence("Ctrl+Q"))
    action.setShortcutContext(QtGui.Qt.ShortcutContext.WindowShortcut)
    action.setToolTip("Close every window and quit (a recording is finished and saved)")
    action.triggered.connect(lambda _=False: quit_all(ask=True))
    window.addAction(action)  # the key works even when the menu bar is hidden
    window.quit_action = action
    return action


class _CloseWatcher:
    """Calls ``on_all_closed`` once none of ``windows`` is visible any more (each close is checked after Qt
    has handled it, so a closeEvent that refuses keeps the loop running)."""

    def __init__(self, windows, on_all_closed) -> None:
        from PySide6 import QtCore

        class Filter(QtCore.QObject):
            def eventFilter(inner, obj, ev) -> bool:  # noqa: N802, N805 (Qt override)
                if ev.type() in (QtCore.QEvent.Type.Close, QtCore.QEvent.Type.Hide):
                    QtCore.QTimer.singleShot(0, self.check)
                return False

        self.windows, self.on_all_closed = list(windows), on_all_closed
        self.filter = Filter()
        for w in self.windows:
            w.installEventFilter(self.filter)
            w.destroyed.connect(lambda *_: QtCore.QTimer.singleShot(0, self.check))

    def check(self) -> None:
        alive = []
        for w in self.windows:
            with contextlib.suppress(RuntimeError):  # deleted C++ object: closed
                if w.isVisible():
                    alive.append(w)
        if not alive:
            self.on_all_closed()


@contextlib.contextmanager
def _signals_quit(app):
    """SIGINT (Ctrl-C) and SIGTERM end the loop cleanly while it runs; the old handlers come back after."""
    from PySide6 import QtCore

    def handler(signum, _frame) -> None:
        print(f"\nradgaze: {signal.Signals(signum).name}, closing", file=sys.stderr, flush=True)
        QtCore.QTimer.singleShot(0, lambda: quit_all(app))

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: signals stay as they are
            old[sig] = signal.signal(sig, handler)
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: None)  # gives Python a moment to run a pending signal handler
    timer.start(SIGNAL_POLL_MS)
    try:
        yield
    finally:
        timer.stop()
        for sig, h in old.items():
            signal.signal(sig, h)


def run_until_closed(app, windows) -> None:
    """Run the event loop until the last of ``windows`` is closed, File ▸ Quit, Ctrl-C or SIGTERM (a timer
    may also call ``quit_all``). Each window gets File ▸ Quit / Ctrl-Q."""
    from PySide6 import QtCore

    windows = [w for w in windows if w is not None]
    for w in windows:
        if hasattr(w, "menuBar"):
            install_quit_action(w)
    loop = QtCore.QEventLoop()
    watcher = _CloseWatcher(windows, loop.quit)
    app._radgaze_loop = loop
    try:
        with _signals_quit(app):
            if any(w.isVisible() for w in windows):
                loop.exec()
    finally:
        app._radgaze_loop = None
        del watcher


def save_png(grabbed, path: Path) -> None:
    """Write a grabbed window (QPixmap / QImage) to ``path``; :class:`StoreWriteError` (one line) when it cannot
    be written (QPixmap.save only answers False: a read-only folder used to end with exit 0 and no file)."""
    from radgaze.capture.base.errors import StoreWriteError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise StoreWriteError(f"{path}: cannot write the screenshot ({exc.strerror or exc})") from None
    if not grabbed.save(str(path)):
        raise StoreWriteError(f"{path}: cannot write the screenshot (Qt could not encode an image there)")


def unattended(step, close, failures: list):
    """A timer's callback for an unattended end (--screenshot, --export): ``step`` runs, an error of radgaze or
    of writing is kept in ``failures`` for :func:`raise_failure` once the event loop has returned (raised in a Qt
    slot it only printed a traceback and left the window open: the command never ended), and ``close`` runs
    either way."""

    def run() -> None:
        try:
            step()
        except (RadgazeError, OSError) as exc:
            failures.append(exc)
        finally:
            close()

    return run


def raise_failure(failures: list) -> None:
    """Raise the first error an :func:`unattended` step kept (the command's one line, exit 2)."""
    if failures:
        raise failures[0]


# ------------------------------------------------------------------------------------------ GC
def collect_garbage_on_main_thread(app, interval_ms: int = 500) -> None:
    """Run Python's cyclic garbage collector only on the Qt main thread.

    Left automatic, a collection can start in any thread that allocates (the ASR worker, the review model
    loader) and free Qt wrappers there; PySide then destroys the widgets on the main thread while the worker,
    inside Qt, waits for the GIL the main thread holds — a deadlock seen in this project's test runs. So
    automatic collection is turned off and a main-thread timer runs the generations whose thresholds were
    passed, as CPython's automatic collector would.
    """
    from PySide6 import QtCore

    if getattr(app, "_radgaze_gc_timer", None) is not None:
        return
    gc.disable()
    timer = QtCore.QTimer(app)
    timer.timeout.connect(collect_due_generations)
    timer.start(interval_ms)
    app._radgaze_gc_timer = timer


def collect_due_generations() -> int:
    """Collect the oldest generation whose allocation threshold was passed; returns objects found."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if counts[generation] > thresholds[generation]:
            return gc.collect(generation)
    return 0
