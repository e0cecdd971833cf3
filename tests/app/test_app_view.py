"""``radgaze view`` and reading as in a PACS (pytest-qt, offscreen): the worklist from files and folders, every
preset on every real radiograph (screenshots in artifacts/view_presets/), Help ▸ Keyboard shortcuts, tooltips,
the right-drag convention kept in QSettings, a window that fits 1366 x 768 and remembers its geometry, and
the record panel's elapsed time and microphone level."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore, QtWidgets

from radgaze.app.main_window import MainWindow
from radgaze.app.state import WINDOW_PRESETS
from radgaze.app.view_cmd import open_viewer
from radgaze.capture.io.images import apply_window

REAL_SUFFIXES = (".png", ".dcm")


def _real_images(shared_data) -> list:
    return sorted(
        p for sub in ("cxr", "dicom") for p in (shared_data / sub).iterdir() if p.suffix in REAL_SUFFIXES
    )


def _png(path, seed: int = 0, shape=(300, 240)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random(shape) * 60000).astype(np.uint16)).save(path)


def test_view_takes_files_and_folders_as_one_worklist(qtbot, tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    _png(folder / "b.png", 1)
    _png(folder / "c.png", 2)
    _png(tmp_path / "a.png", 3)
    win = open_viewer([tmp_path / "a.png", folder])
    qtbot.addWidget(win)
    assert [i.path.name for i in win.worklist.items] == ["a.png", "b.png", "c.png"]
    assert win.state.case_id == "a"
    assert not win.reading_dock.isVisible()  # no tracker, no dictation
    assert "Space" not in win.shortcuts  # nothing to record here
    win.shortcuts["N"].activated.emit()
    assert win.state.case_id == "b"


def test_view_refuses_nothing_to_show_on_one_line(tmp_path):
    from radgaze.app.view_cmd import main
    from radgaze.capture.base.errors import ConfigError, ImageLoadError

    with pytest.raises(ConfigError, match="found none"):
        main([str(tmp_path)])
    with pytest.raises(ImageLoadError, match="does not exist"):
        main([str(tmp_path / "missing.dcm")])
    _png(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="--preset"):
        main([str(tmp_path), "--preset", "brain"])


def _centre(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return a[int(0.2 * h) : int(0.8 * h), int(0.2 * w) : int(0.8 * w)]


def preset_quality(pixels: np.ndarray, center: float, width: float) -> dict[str, float]:
    """What a preset shows of the chest (the central 60 %): the share crushed to black / white, and the grey
    spread left in the dark half (lungs), the bright half (mediastinum, spine) and the 25-50 % band where
    ribs overlie the lungs."""
    shown, raw = _centre(apply_window(pixels, center, width)).astype(float), _centre(pixels).astype(float)
    q25, q50 = np.percentile(raw, [25, 50])
    return {
        "black": float((shown <= 3).mean()),
        "white": float((shown >= 252).mean()),
        "dark_sd": float(shown[raw <= q50].std()),
        "bright_sd": float(shown[raw >= q50].std()),
        "rib_band_sd": float(shown[(raw >= q25) & (raw <= q50)].std()),
        "rib_band_mean": float(shown[(raw >= q25) & (raw <= q50)].mean()),
    }


# what each preset must show on a real chest film (bounds from looking at all of them; the old bone window,
# percentiles 60-99.8, crushed 74 % of the chest and the whole rib band to black and fails here)
PRESET_BOUNDS = {
    "default": {"black": (None, 0.05), "white": (None, 0.10)},
    "lung": {"black": (None, 0.15), "white": (None, 0.60), "dark_sd": (30.0, None)},
    "mediastinum": {"white": (None, 0.05), "bright_sd": (20.0, None)},
    "bone": {
        "black": (None, 0.50),
        "white": (None, 0.05),
        "rib_band_sd": (5.0, None),
        "bright_sd": (15.0, None),
    },
}


def test_the_old_bone_window_fails_these_bounds(shared_data):
    from radgaze.capture.io.images import load_image, percentile_window

    img = load_image(shared_data / "cxr" / "00000001_000.png")
    q = preset_quality(img.pixels, *percentile_window(img.pixels, (60.0, 99.8)))
    assert q["black"] > PRESET_BOUNDS["bone"]["black"][1] and q["rib_band_mean"] < 25.0


def test_every_preset_on_every_real_radiograph(qtbot, shared_data, artifacts_dir):
    out = artifacts_dir / "view_presets"
    out.mkdir(exist_ok=True)
    win = open_viewer([shared_data / "cxr", shared_data / "dicom"])
    qtbot.addWidget(win)
    win.resize(1366, 740)
    qtbot.waitExposed(win)
    names = ["default", *WINDOW_PRESETS]
    assert names == ["default", "lung", "mediastinum", "bone"]
    failures = []
    for index, item in enumerate(win.worklist.items):
        win.worklist.select(index)
        assert win.state.case_id == item.case_id
        tiles = []
        for name in names:
            win.state.apply_preset(name)
            qtbot.wait(1)
            q = preset_quality(win.state.pixels, *win.state.window)
            for key, (lo, hi) in PRESET_BOUNDS[name].items():
                if (lo is not None and q[key] < lo) or (hi is not None and q[key] > hi):
                    failures.append(f"{item.path.name} {name}: {key} = {q[key]:.2f}")
            shot = win.image_view.grab().toImage()
            tiles.append(shot.scaled(440, 440, QtCore.Qt.AspectRatioMode.KeepAspectRatio))
        _montage(tiles, names).save(str(out / f"{item.path.stem}.png"))
        if index < 3 or item.path.suffix == ".dcm":
            win.grab().save(str(out / f"window_{item.path.stem}_bone.png"))
    assert len(list(out.glob("*.png"))) >= len(_real_images(shared_data))
    assert not failures, "\n".join(failures)


def _montage(tiles, labels):
    from PySide6 import QtGui

    w = sum(t.width() for t in tiles) + 4 * (len(tiles) - 1)
    h = max(t.height() for t in tiles) + 22
    canvas = QtGui.QImage(w, h, QtGui.QImage.Format.Format_RGB32)
    canvas.fill(QtGui.QColor(30, 30, 30))
    p = QtGui.QPainter(canvas)
    x = 0
    for tile, label in zip(tiles, labels):
        p.drawImage(x, 22, tile)
        p.setPen(QtGui.QColor(255, 220, 120))
        p.drawText(x + 4, 16, label)
        x += tile.width() + 4
    p.end()
    return canvas


def test_8bit_png_opens_with_a_histogram_window_and_says_uint8(qtbot, shared_data):
    win = open_viewer([shared_data / "cxr" / "hannover_a132d8b6.png"])
    qtbot.addWidget(win)
    c, w = win.state.window
    assert w < 200 and c == int(c) and w == int(w)  # not 0..255 (127.5 / 255)
    assert win.image_view.readout.text().splitlines()[0] == "640 × 524  uint8"
    assert "uint8" in win.statusBar().currentMessage()


def test_help_lists_every_key_and_the_right_drag(qtbot, tmp_path):
    _png(tmp_path / "a.png")
    win = open_viewer([tmp_path])
    qtbot.addWidget(win)
    win.help_action.trigger()
    text = win.shortcuts_dialog.text()
    for key in ("F", "I", "L", "M", "B", "0", "PgDown", "Ctrl+Q"):
        assert f"<b>{key}" in text, key
    assert "horizontal = width, vertical = level" in text
    win.shortcuts_dialog.close()


def test_right_drag_convention_is_a_setting_kept_between_windows(qtbot, tmp_path):
    _png(tmp_path / "a.png")
    win = open_viewer([tmp_path])
    qtbot.addWidget(win)
    assert win.state.wl_drag_mode == "pacs"
    win.drag_mode_actions["reflacx"].trigger()
    assert win.state.wl_drag_mode == "reflacx"
    again = open_viewer([tmp_path])
    qtbot.addWidget(again)
    assert again.state.wl_drag_mode == "reflacx" and again.drag_mode_actions["reflacx"].isChecked()
    again.drag_mode_actions["pacs"].trigger()  # leave the default for the other tests


def test_every_control_has_a_tooltip(qtbot, tmp_path):
    _png(tmp_path / "a.png")
    win = MainWindow(title="radgaze record", settings_key="tooltips")
    qtbot.addWidget(win)
    win.open_folder(tmp_path)
    kinds = (QtWidgets.QAbstractButton, QtWidgets.QComboBox, QtWidgets.QSlider, QtWidgets.QProgressBar)
    controls = [w for w in win.findChildren(QtWidgets.QWidget) if isinstance(w, kinds) and w.isVisibleTo(win)]
    missing = [
        f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in controls if not w.toolTip()
    ]
    # dock title-bar buttons belong to Qt, not to us
    missing = [m for m in missing if not m.startswith("QAbstractButton")]
    assert len(controls) >= 10 and not missing, missing


def test_same_viewing_keys_in_view_and_record_windows(qtbot, tmp_path):
    _png(tmp_path / "a.png")
    view = open_viewer([tmp_path])
    record = MainWindow(title="radgaze record", settings_key="record-keys")
    for w in (view, record):
        qtbot.addWidget(w)
    viewing = {"F", "1", "I", "0", "L", "M", "B", "G", "N", "P", "PgDown", "PgUp"}
    assert viewing <= set(view.shortcuts) and viewing <= set(record.shortcuts)
    assert set(record.shortcuts) - set(view.shortcuts) == {"Space"}
    view.state.zoom_at(3.0, 10, 10)
    view.shortcuts["F"].activated.emit()
    assert view.state.fitted


def test_window_fits_1366x768_and_remembers_its_geometry(qtbot, tmp_path, artifacts_dir):
    _png(tmp_path / "a.png")
    win = MainWindow(title="radgaze record", settings_key="geometry-test")
    qtbot.addWidget(win)
    win.open_folder(tmp_path)
    hint = win.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 740, (hint.width(), hint.height())
    win.resize(1366, 740)
    win.show()
    qtbot.waitExposed(win)
    assert (win.width(), win.height()) == (1366, 740)
    right = win.reading_dock.geometry()
    assert right.right() < win.width() and right.width() >= 250  # the reading panel is all there
    assert win.statusBar().geometry().bottom() < win.height()
    win.grab().save(str(artifacts_dir / "record_window_1366x740.png"))
    win.close()
    from radgaze.app.qtapp import settings

    assert settings().value("geometry/geometry-test") is not None  # restored as a real window: the Xvfb test


def test_elapsed_counter_and_level_meter(qtbot):
    from radgaze.capture.live.live_session import level_dbfs

    t = np.arange(16000) / 16000
    assert level_dbfs(0.5 * np.sin(2 * np.pi * 440 * t)) == pytest.approx(
        20 * np.log10(0.5 / np.sqrt(2)), abs=0.01
    )
    assert level_dbfs(np.zeros(100)) == -90.0 and level_dbfs(np.zeros(0)) == -90.0
    # int16 blocks, as the audio sources deliver them: full scale 32768
    sine16 = (16384 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    assert level_dbfs(sine16) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    win = MainWindow(title="radgaze record", settings_key="meter")
    qtbot.addWidget(win)
    panel = win.reading
    assert panel.elapsed.text() == ""
    panel.set_recording(True, "recording c1")
    qtbot.waitUntil(lambda: panel.elapsed.text() == "● 00:01", timeout=4000)
    panel.set_recording(False)
    assert panel.elapsed.text() == ""
    panel.level.set_level(-20.0)
    assert panel.level.value() == -20 and "-20 dBFS" in panel.level.text()
    panel.level.set_level(-120.0)
    assert panel.level.value() == -60


def test_record_window_shows_the_real_microphone_level_and_a_lost_tracker(
    qtbot, tmp_path, shared_data, artifacts_dir
):
    """A real LiveSession fed by the real speech clip in real time (no tracker connected): the level meter
    follows the speech, the elapsed counter runs, the tracker panel says it is not connected."""
    from radgaze.app.recording import RecordController
    from radgaze.capture.base.records import DisplayGeometry
    from radgaze.capture.live.audio import AudioFileSource
    from radgaze.capture.live.live_session import LiveSession
    from radgaze.capture.store.writer import SessionWriter

    images = tmp_path / "img"
    images.mkdir()
    Image.open(shared_data / "cxr" / "00000001_000.png").save(images / "00000001_000.png")
    win = MainWindow(title="radgaze record — meter.h5", settings_key="meter-live")
    qtbot.addWidget(win)
    win.resize(1366, 740)
    win.show()
    win.open_folder(images)
    writer = SessionWriter(tmp_path / "meter.h5", live=True)
    audio = AudioFileSource(shared_data / "audio" / "jfk.flac")
    session = LiveSession(DisplayGeometry(), writer, audio_queue=audio.queue).start()
    ctl = RecordController(win, session, DisplayGeometry(), tracker_name="Tobii")
    try:
        ctl.start()
        audio.start()
        levels = []
        qtbot.waitUntil(
            lambda: levels.append(win.reading.level.dbfs) or win.reading.elapsed_s() > 3.0, timeout=15000
        )
        heard = [v for v in levels if v == v]
        assert heard and -40.0 < max(heard) < 0.0  # speech, not silence, below full scale
        assert "not connected" in win.reading.tracker.label.text()
        assert win.reading.elapsed.text().startswith("● 00:0")
        win.grab().save(str(artifacts_dir / "record_level_meter.png"))
    finally:
        ctl.stop()
        audio.stop()
        session.stop()
        writer.close()


def test_icon_and_desktop_entry_ship_as_assets(qtbot):
    import configparser
    from importlib import resources

    from PySide6 import QtGui

    from radgaze.assets import asset_path, asset_text

    with resources.as_file(asset_path("radgaze.svg")) as svg:
        icon = QtGui.QIcon(str(svg))
        pixmap = icon.pixmap(64, 64)
    assert not pixmap.isNull()
    rgb = pixmap.toImage().convertToFormat(QtGui.QImage.Format.Format_RGB32)
    assert len({rgb.pixel(x, y) for x in range(0, 64, 4) for y in range(0, 64, 4)}) > 5  # drawn, not blank
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read_string(asset_text("radgaze.desktop"))
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"].startswith("radgaze view") and d["Icon"] == "radgaze"


def test_display_checks(monkeypatch):
    from radgaze.app.qtapp import check_display, parse_x_display, x_server_answers
    from radgaze.capture.base.errors import ConfigError

    assert parse_x_display(":0") == ("", 0) and parse_x_display("host:12.1") == ("host", 12)
    with pytest.raises(ValueError, match="DISPLAY"):
        parse_x_display("nonsense")
    assert not x_server_answers(":399")
    check_display({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":399"}, "linux")  # no window system needed
    with pytest.raises(ConfigError, match="cannot open display ':399'"):
        check_display({"DISPLAY": ":399"}, "linux")
    with pytest.raises(ConfigError, match="xvfb-run"):
        check_display({}, "linux")


def test_view_opens_session_files_case_by_case(qtbot, tmp_path):
    from replay_review_sessions import write_session

    session = write_session(tmp_path / "s" / "reading.h5", 2, prefix="k")
    win = open_viewer([session])
    qtbot.addWidget(win)
    assert [i.case_id for i in win.worklist.items] == ["k0", "k1"]
    assert win.state.case_id == "k0" and win.state.pixels is not None  # the session's image, shown
    win.shortcuts["PgDown"].activated.emit()
    assert win.state.case_id == "k1"
