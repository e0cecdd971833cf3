"""Saliency metrics on hand-built maps whose answers are known (Bylinskii et al. 2018 definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radgaze.model.metrics import auc_judd, cc, kld, nss, pointing_game, sim


def blob(shape=(8, 8), at=(2, 2)) -> np.ndarray:
    a = np.zeros(shape)
    a[at] = 1.0
    return a


def test_cc_identity_negation_affine_and_constant():
    rng = np.random.default_rng(0)
    a = rng.random((6, 7))
    assert cc(a, a) == pytest.approx(1.0)
    assert cc(a, -a) == pytest.approx(-1.0)
    assert cc(a, 3 * a + 2) == pytest.approx(1.0)  # invariant to scale and offset
    assert cc(a, np.ones_like(a)) == 0.0
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    c = np.array([[1.0, 3.0], [2.0, 4.0]])
    assert cc(b, c) == pytest.approx(0.8)  # Pearson of (1,2,3,4) and (1,3,2,4)


def test_nss_known_value():
    s = np.array([[0.0, 0.0], [0.0, 4.0]])  # mean 1, std sqrt(3)
    fix = np.array([[0, 0], [0, 1]])
    assert nss(s, fix) == pytest.approx(3 / math.sqrt(3))
    fix2 = np.array([[1, 0], [0, 1]])
    assert nss(s, fix2) == pytest.approx(((-1 + 3) / math.sqrt(3)) / 2)
    with pytest.raises(ValueError, match="no fixated"):
        nss(s, np.zeros((2, 2)))


def test_kld_zero_for_equal_and_known_value():
    p = np.array([0.5, 0.5])
    assert kld(p, p * 10) == pytest.approx(0.0, abs=1e-12)  # maps are sum-normalised first
    q = np.array([0.25, 0.75])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kld(p, q) == pytest.approx(expected, rel=1e-9)
    eps = np.finfo(float).eps  # mass where q has none costs log(p / eps)
    expected = 0.5 * math.log(eps + 0.5 / eps) + 0.5 * math.log(eps + 0.5)
    assert kld(p, np.array([1.0, 0.0])) == pytest.approx(expected)


def test_sim_known_values():
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert sim(a, a * 5) == pytest.approx(1.0)
    assert sim(a, blob((2, 2), (1, 1))) == 0.0
    assert sim(np.array([1.0, 1.0]), np.array([3.0, 1.0])) == pytest.approx(0.5 + 0.25)


def test_auc_judd_perfect_chance_and_known():
    s = np.arange(16, dtype=float).reshape(4, 4)
    top = s >= 14
    assert auc_judd(s, top) == pytest.approx(1.0)
    # worst case: thresholds only at fixated values (1, 0) give points (1, .5), (1, 1): area .25, not 0
    assert auc_judd(s, s <= 1) == pytest.approx(0.25)
    assert auc_judd(np.ones((4, 4)), top) == pytest.approx(0.5)  # a flat map is chance
    # saliency [4,3,2,1], fixated = first and third: thresholds 4 -> (tp .5, fp 0), 2 -> (tp 1, fp .5)
    sal = np.array([4.0, 3.0, 2.0, 1.0])
    fix = np.array([1, 0, 1, 0])
    # ROC points (0, 0), (0, .5), (.5, 1), (1, 1): area 0 + .5 * (.5 + 1) / 2 + .5 * 1
    expected = 0.5 * 0.75 + 0.5
    assert auc_judd(sal, fix) == pytest.approx(expected)


def test_pointing_game():
    s = blob(at=(5, 6))
    mask = np.zeros((8, 8), dtype=bool)
    mask[4:7, 5:8] = True
    assert pointing_game(s, mask) is True
    assert pointing_game(blob(at=(0, 0)), mask) is False


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        cc(np.zeros((2, 2)), np.zeros((3, 2)))
