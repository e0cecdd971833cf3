"""Phantom radiographs: deterministic, anatomically ordered intensities, findings where their masks say."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.synth.phantom import (
    FINDING_LABELS,
    SIDES,
    ZONES,
    Anatomy,
    draw_case,
    finding_mask,
    place_findings,
    random_anatomy,
    random_case_findings,
    region_mask,
    render_phantom,
)


def _case(label: str, side: str = "", zone: str = "", seed: int = 0, size: int = 256):
    rng = np.random.default_rng(seed)
    anat = random_anatomy(rng)
    anat2, specs = place_findings(rng, anat, [(label, side, zone)])
    return anat2, specs, render_phantom(anat2, specs, size)


def test_phantom_is_deterministic_by_seed():
    a = draw_case(np.random.default_rng(7), 128)
    b = draw_case(np.random.default_rng(7), 128)
    c = draw_case(np.random.default_rng(8), 128)
    assert a.pixels.dtype == np.uint16 and a.pixels.shape == (128, 128)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.findings == b.findings
    assert np.abs(a.pixels.astype(int) - c.pixels.astype(int)).mean() > 500


def test_anatomy_intensities_are_ordered_like_a_radiograph():
    """Lungs darker than heart and abdomen; air outside the body darkest; the 16-bit range is used."""
    anat = Anatomy()
    px = render_phantom(anat, [], 256).astype(float)
    lungs = region_mask("lungs", anat, 256, 256)
    heart = region_mask("heart", anat, 256, 256)
    assert px[lungs].mean() < px[heart].mean() - 8000
    assert px[200:240, 100:156].mean() > px[lungs].mean() + 8000  # abdomen below the diaphragm
    assert px[:8, :8].mean() < px[lungs].mean()  # air above the shoulders
    assert px.max() - px.min() > 30000


@pytest.mark.parametrize(
    ("label", "side", "zone", "sign"),
    [
        ("consolidation", "right", "lower", 1),
        ("consolidation", "left", "upper", 1),
        ("pleural_effusion", "left", "lower", 1),
        ("nodule", "right", "middle", 1),
        ("pneumothorax", "left", "upper", -1),
    ],
)
def test_a_finding_changes_the_image_inside_its_mask(label, side, zone, sign):
    """Denser (or, for a pneumothorax, darker) inside the mask than the same anatomy without it; and the
    patient's right is drawn on the image's left."""
    anat, specs, px = _case(label, side, zone)
    clean = render_phantom(anat, [], 256).astype(float)
    mask = finding_mask(specs[0], anat, 256, 256)
    assert mask.sum() > 5
    diff = px.astype(float) - clean
    assert sign * diff[mask].mean() > 1500
    assert abs(diff[~mask].mean()) < 0.1 * abs(diff[mask].mean())
    x_centre = np.nonzero(mask)[1].mean()
    assert (x_centre < 128) == (side == "right")


def test_cardiomegaly_enlarges_the_heart_beyond_half_the_thorax():
    normal = [random_anatomy(np.random.default_rng(s)).cardiothoracic_ratio() for s in range(20)]
    assert max(normal) < 0.5
    anat, specs, px = _case("cardiomegaly", seed=3)
    assert anat.cardiothoracic_ratio() > 0.55
    heart = finding_mask(specs[0], anat, 256, 256)
    cols = np.nonzero(heart.any(axis=0))[0]
    assert (cols.max() - cols.min() + 1) / 256 > 0.55 * anat.thorax_width()


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("zone", ZONES)
def test_zone_masks_lie_in_their_third_of_the_lung(side, zone):
    anat, specs, _ = _case("consolidation", side, zone, seed=11)
    m = finding_mask(specs[0], anat, 128, 128)
    lung_rows = np.nonzero(region_mask("lungs", anat, 128, 128).any(axis=1))[0]
    y = np.nonzero(m)[0].mean()
    third = (y - lung_rows.min()) / (lung_rows.max() - lung_rows.min()) * 3
    assert ZONES.index(zone) - 0.35 < third < ZONES.index(zone) + 1.35


def test_random_findings_cover_every_label_and_normal_studies():
    rng = np.random.default_rng(0)
    cases = [random_case_findings(rng) for _ in range(200)]
    seen = {label for c in cases for label, _, _ in c}
    assert seen == set(FINDING_LABELS)
    assert 0.15 < sum(not c for c in cases) / len(cases) < 0.35
    for c in cases:  # never two findings in the same place
        places = [(s, z) for _, s, z in c if s]
        assert len(places) == len(set(places))


def test_phantom_is_the_same_picture_at_any_size():
    """The 2048 px rendering, block-averaged to 256 px, is the 256 px one (its speed: not asserted here)."""
    anat, specs, small = _case("consolidation", "right", "lower")
    big = render_phantom(anat, specs, 2048)
    assert big.shape == (2048, 2048) and big.dtype == small.dtype == np.uint16
    pooled = big.astype(float).reshape(256, 8, 256, 8).mean(axis=(1, 3))
    assert np.corrcoef(pooled.ravel(), small.astype(float).ravel())[0, 1] > 0.97
    assert abs(pooled.mean() - small.mean()) < 0.02 * small.mean()


def test_single_finding_studies_for_the_learning_curve_are_balanced_and_varied():
    rng = np.random.default_rng(5)
    cases = [random_case_findings(rng, p_normal=1 / 6, max_findings=1) for _ in range(600)]
    assert all(len(c) <= 1 for c in cases)
    counts = {lab: sum(1 for c in cases if c and c[0][0] == lab) for lab in FINDING_LABELS}
    counts["normal"] = sum(not c for c in cases)
    assert all(70 < n < 130 for n in counts.values()), counts  # six classes, ~100 each
    for lab in ("consolidation", "nodule"):  # the place varies: both sides, every zone
        places = {(s, z) for c in cases if c and c[0][0] == lab for _, s, z in c}
        assert places == {(s, z) for s in SIDES for z in ZONES}
    with pytest.raises(ValueError, match="max_findings"):
        random_case_findings(rng, max_findings=4)
