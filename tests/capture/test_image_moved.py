"""Images that moved (issue 20 item 5): a session's image is found by file name beside the session file or in the
image folders (``--images DIR`` / ``RADGAZE_IMAGES``) and used only with its recorded sha256; an image found
nowhere is one line naming it, and training's index names the case instead of dropping it silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from radgaze.capture.base.errors import ImageLoadError
from radgaze.capture.store.case_image import (
    IMAGES_ENV,
    case_image_problem,
    load_case_image,
    stored_image_path,
)
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.synth.session import write_synthetic_sessions


@pytest.fixture
def moved(tmp_path, monkeypatch) -> tuple[Path, Path, object]:
    """A synthetic session moved away from its images: (session file, the images' folder, its first case)."""
    monkeypatch.delenv(IMAGES_ENV, raising=False)
    recorded = write_synthetic_sessions(tmp_path / "recorded", 1, seed=2, cases_per_file=1, image_size=256)[0]
    session = tmp_path / "elsewhere" / "deep" / recorded.name
    session.parent.mkdir(parents=True)
    shutil.move(recorded, session)
    with SessionReader(session) as r:
        case = r.case(r.case_ids[0])
    return session, recorded.parent, case


def test_a_missing_image_is_one_line_naming_it(moved):
    session, _images, case = moved
    with pytest.raises(ImageLoadError) as err:
        load_case_image(case.image, session)
    msg = str(err.value)
    assert "\n" not in msg and Path(case.image.path).name in msg and "--images DIR" in msg
    assert case_image_problem(case.image, session) == msg


def test_found_in_the_image_folders_and_verified(moved, monkeypatch):
    session, images, case = moved
    monkeypatch.setenv(IMAGES_ENV, str(images.parent))  # found below a search folder
    img = load_case_image(case.image, session)
    assert img.meta.sha256 == case.image.sha256 and (img.meta.width, img.meta.height) == (256, 256)
    assert case_image_problem(case.image, session) is None


def test_found_beside_the_session_file(moved):
    session, images, case = moved
    name = Path(case.image.path).name
    shutil.copy(images / name, session.parent / name)
    assert load_case_image(case.image, session).meta.sha256 == case.image.sha256


def test_another_file_of_the_same_name_is_not_taken(moved, tmp_path, monkeypatch):
    session, images, case = moved
    name = Path(case.image.path).name
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(images / name, other / name)
    with (other / name).open("ab") as fh:
        fh.write(b"\0")  # altered: another sha256
    monkeypatch.setenv(IMAGES_ENV, str(other))
    with pytest.raises(ImageLoadError, match=f"image {name} not found"):
        load_case_image(case.image, session)


def test_the_training_index_names_the_case_then_finds_it_with_images(moved, monkeypatch, caplog):
    from radgaze.training.data import build_index

    session, images, case = moved
    index = build_index(session.parent.parent)
    assert index.cases == [] and index.skipped[0]["case_id"] == case.case_id
    assert "not found" in index.skipped[0]["error"] and case.case_id in caplog.text
    monkeypatch.setenv(IMAGES_ENV, str(images))  # the cached scan is redone with the new image folders
    index = build_index(session.parent.parent)
    assert [c.case_id for c in index.cases] == [case.case_id] and index.skipped == []


def test_stored_path_is_relative_to_the_session_file(tmp_path):
    image, session = tmp_path / "cxr" / "a.png", tmp_path / "sub" / "r.h5"
    assert stored_image_path(image, session, keep=False) == "../cxr/a.png"
    assert stored_image_path(image, session, keep=True) == str(image.resolve())
