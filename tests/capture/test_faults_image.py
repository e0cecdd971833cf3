"""The case's image is verified on every read that uses its pixels (issue 24, item 5): another PNG copied
over it — of the same size or another — is refused in one line by the store's load_case_image, which train's
index and loader, prepare, replay/annotate, review and the viewer's worklist all call. Before, ``train`` used
the wrong image without a word."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radgaze.capture.base.errors import ImageLoadError
from radgaze.capture.store.case_image import case_image_problem, load_case_image
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.synth.session import write_synthetic_sessions


@pytest.fixture()
def session(tmp_path: Path) -> Path:
    return write_synthetic_sessions(tmp_path / "s", 2, seed=3, cases_per_file=2, image_size=256)[0]


def _first_case(session: Path):
    with SessionReader(session) as r:
        return r.case(r.case_ids[0]), r.case(r.case_ids[1])


def test_the_recorded_image_loads_and_verifies(session: Path):
    case, _ = _first_case(session)
    img = load_case_image(case.image, session)
    assert img.meta.sha256 == case.image.sha256 and case_image_problem(case.image, session) is None


@pytest.mark.parametrize("other", ["the other case's image (same size)", "a PNG of another size"])
def test_another_file_over_the_image_is_refused_in_one_line(session: Path, tmp_path: Path, other: str):
    case, second = _first_case(session)
    target = session.parent / case.image.path
    if other.startswith("the other"):
        shutil.copyfile(session.parent / second.image.path, target)
    else:
        Image.fromarray(np.zeros((100, 80), np.uint8)).save(target)
    with pytest.raises(
        ImageLoadError, match=r"expected the image the case was recorded on .*got another file"
    ) as e:
        load_case_image(case.image, session)
    assert "\n" not in str(e.value)
    assert "got another file" in case_image_problem(case.image, session)


def test_training_index_skips_the_swapped_image_and_its_loader_refuses_it(session: Path):
    from radgaze.training.data import build_index, read_case

    case, second = _first_case(session)
    index = build_index(session.parent, use_cache=False)
    assert len(index.cases) == 2
    entry = next(c for c in index.cases if c.case_id == case.case_id)
    shutil.copyfile(session.parent / second.image.path, session.parent / case.image.path)
    with pytest.raises(ImageLoadError, match="recorded on"):
        read_case(session.parent, entry)  # a cached index does not let the wrong pixels through
    fresh = build_index(session.parent, use_cache=False)
    assert [c.case_id for c in fresh.cases] == [second.case_id]
    assert "got another file" in fresh.skipped[0]["error"]


def test_replay_and_annotate_show_no_wrong_pixels(session: Path, qapp):
    from radgaze.app.replay import load_replay_case

    case, second = _first_case(session)
    shutil.copyfile(session.parent / second.image.path, session.parent / case.image.path)
    loaded = load_replay_case(session, case.case_id)
    assert "recorded on" in loaded.image_note and not loaded.pixels.any()


def test_review_refuses_the_swapped_image(session: Path, qapp):
    from radgaze.app.review import load_case_image as review_image

    case, second = _first_case(session)
    shutil.copyfile(session.parent / second.image.path, session.parent / case.image.path)
    with pytest.raises(ImageLoadError, match="recorded on"):
        review_image(case, session)
