"""Worklist: folders of images (real radiographs) and sessions, next/previous, status; main window wiring."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from radgaze.app.worklist import FAILED, NEW, RECORDED, VIEWED, Worklist, scan_folder
from radgaze.capture.base.errors import ImageLoadError


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("b_case.png", "a_case.png"):
        Image.fromarray((rng.random((64, 48)) * 65535).astype(np.uint16)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return tmp_path


def test_scan_folder_lists_images_sorted_and_skips_others(image_folder):
    items = scan_folder(image_folder)
    assert [i.path.name for i in items] == ["a_case.png", "b_case.png", "broken.png"]
    assert all(i.kind == "image" and i.status == NEW for i in items)
    with pytest.raises(ImageLoadError, match="does not exist"):
        scan_folder(image_folder / "nope")


def test_next_previous_and_status(image_folder):
    wl = Worklist.from_folder(image_folder)
    seen = []
    wl.current_changed.connect(seen.append)
    assert wl.next() and wl.index == 0
    case = wl.load_current()
    assert case.pixels.shape == (64, 48) and case.pixels.dtype == np.uint16
    assert wl.items[0].status == VIEWED
    assert wl.next() and wl.next()
    assert not wl.next() and wl.index == 2  # at the end nothing changes
    with pytest.raises(ImageLoadError):
        wl.load_current()  # the broken PNG
    assert wl.items[2].status == FAILED and wl.items[2].error
    assert wl.previous() and wl.index == 1
    assert seen == [0, 1, 2, 1]
    wl.set_status(1, RECORDED)
    assert "[recorded]" in wl.items[1].label


def test_real_radiographs_and_monochrome1_dicom(shared_data):
    wl = Worklist.from_folder(shared_data / "dicom")
    names = [i.path.name for i in wl.items]
    assert "RG1_J2KI.dcm" in names
    wl.select(names.index("RG1_J2KI.dcm"))
    case = wl.load_current()
    assert case.meta.photometric == "MONOCHROME1"
    # MONOCHROME1 is shown correctly: the loader inverted it, so the lung fields (air, little attenuation)
    # are darker than the mediastinum under the default window
    h, w = case.pixels.shape
    lung = np.median(case.pixels[h // 3 : h // 2, w // 6 : w // 3])
    medi = np.median(case.pixels[h // 3 : h // 2, w // 2 - w // 20 : w // 2 + w // 20])
    assert lung < medi


def test_main_window_opens_a_folder_and_walks_it(qtbot, image_folder):
    from radgaze.app.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    win.open_folder(image_folder)
    assert win.state.case_id == "a_case"
    assert win.worklist_widget.count() == 3 and win.worklist_widget.currentRow() == 0
    win.next_button.click()
    assert win.state.case_id == "b_case"
    assert win.worklist_widget.item(0).text().startswith("[viewed]")
    win.worklist_widget.setCurrentRow(2)  # selecting the broken file keeps the last image and says why
    assert win.state.case_id == "b_case"
    assert "cannot open case" in win.statusBar().currentMessage()
    win.worklist.select(0)
    win.shortcuts["I"].activated.emit()
    assert win.state.invert and win.controls.invert.isChecked()
    win.controls.preset_buttons["lung"].click()
    assert win.state.window != win.state.default_window


def test_reading_a_real_dicom_in_the_window(qtbot, shared_data, artifacts_dir):
    from radgaze.app.main_window import MainWindow

    win = MainWindow(reading_panel=False)
    qtbot.addWidget(win)
    win.resize(1200, 900)
    win.show()
    qtbot.waitExposed(win)
    win.open_folder(shared_data / "dicom")
    assert win.state.case_id == "RG1_J2KI"
    c, w = win.state.window
    assert (c, w) == (32767 - 15000, 30000)  # drawn through the inversion (MONOCHROME1)...
    assert "W 30000  L 15000" in win.image_view.readout.text()  # ...shown as the file's tags say
    win.shortcuts["L"].activated.emit()
    c2, w2 = win.state.window
    assert w2 < w and f"W {int(w2)}  L {int(32767 - c2)}" in win.image_view.readout.text()
    win.grab().save(str(artifacts_dir / "reading_dicom_lung.png"))
