"""I-VT over a velocity window (Olsen 2012) and the live detector giving the batch detector's fixations."""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry
from radgaze.capture.gazemath.binocular import BinocularCombiner, disagreement_warning, eye_disagreement_deg
from radgaze.capture.gazemath.fixations import detect_fixations_ivt, fixations_from_gaze, ivt_velocity_deg_s
from radgaze.capture.gazemath.geometry import fit_view
from radgaze.capture.gazemath.live_fixations import LiveFixationDetector

DISPLAY = DisplayGeometry(1920, 1080, 530.0, 300.0, 650.0)


def test_window_velocity_of_a_steady_sweep_and_at_gaps():
    t = np.arange(100) / 500.0
    x = 10.0 * t  # 10 deg/s sweep
    speed = ivt_velocity_deg_s(t, x, np.zeros_like(t), window_s=0.020, gap_s=0.075)
    np.testing.assert_allclose(speed, 10.0, rtol=1e-9)
    # a 0.1 s gap cuts the windows: a sample alone between gaps can start nothing
    t2 = np.concatenate([t[:50], [t[49] + 0.1], t[50:] + 0.2])
    x2 = np.concatenate([x[:50], [100.0], x[50:]])
    speed2 = ivt_velocity_deg_s(t2, x2, np.zeros_like(t2), window_s=0.020, gap_s=0.075)
    assert np.isinf(speed2[50]) and np.all(np.isfinite(np.delete(speed2, 50)))
    np.testing.assert_allclose(speed2[:50], 10.0, rtol=1e-9)  # the jump after the gap never enters a window


def test_window_keeps_a_noisy_fixation_whole_that_point_to_point_velocity_breaks():
    rng = np.random.default_rng(3)
    t = np.arange(250) / 500.0  # one 0.5 s fixation at 500 Hz
    x, y = (
        rng.normal(0, 0.03, t.size),
        rng.normal(0, 0.03, t.size),
    )  # 0.03 deg noise: ~27 deg/s point to point
    valid = np.ones(t.size, bool)
    s, e = detect_fixations_ivt(t, x, y, valid, window_s=0.0, merge_deg=0.0)
    assert len(s) > 1 or (e - s).sum() < t.size - 10  # without the window the noise breaks it
    s, e = detect_fixations_ivt(t, x, y, valid, merge_deg=0.0)
    assert (len(s), s[0], e[0]) == (1, 0, t.size - 1)


def _stream(rng, rate_hz: float, seconds: float, noise_px: float) -> np.ndarray:
    """Fixations of random length at random places (some a few px from the last: merge candidates), noise,
    single dropped samples and dropouts up to 0.2 s."""
    t = 1000.0 + np.arange(int(rate_hz * seconds)) / rate_hz
    x, y = np.zeros(t.size), np.zeros(t.size)
    i = 0
    while i < t.size:
        n = int(rng.uniform(0.05, 0.5) * rate_hz)
        cx, cy = rng.uniform(100, 1800), rng.uniform(100, 1000)
        if i and rng.random() < 0.3:
            cx, cy = x[i - 1] + rng.normal(0, 8), y[i - 1] + rng.normal(0, 8)
        x[i : i + n], y[i : i + n] = cx, cy
        i += n
    g = np.zeros(t.size, GAZE_DTYPE)
    g["t_lsl"] = t
    g["x_screen_px"] = x + rng.normal(0, noise_px, t.size)
    g["y_screen_px"] = y + rng.normal(0, noise_px, t.size)
    g["flags"] = GAZE_VALID
    drop = rng.random(t.size) < 0.02
    for k in rng.integers(0, t.size, 20):
        drop[k : k + rng.integers(1, int(rate_hz * 0.2))] = True
    g["flags"][drop] = 0
    g["x_screen_px"][drop] = np.nan
    return g


def run_live(gaze: np.ndarray, view: np.ndarray, chunks: list[int], display=DISPLAY, **params) -> np.ndarray:
    """Feed ``gaze`` to a live detector in chunks of the given sizes; check that nothing is emitted that starts
    before the horizon the detector announced earlier; return all fixations."""
    det = LiveFixationDetector(display, **params)
    out, i, horizon = [], 0, -np.inf
    for n in chunks:
        got = det.push(gaze[i : i + n], view)
        assert not got.size or got["t_start"].min() >= horizon
        horizon = det.horizon_lsl
        out.append(got)
        i += n
    assert i >= gaze.size
    out.append(det.flush(view))
    return np.concatenate(out)


@pytest.mark.parametrize(("rate_hz", "noise_px"), [(1000, 3.0), (500, 8.0), (250, 15.0), (60, 2.0)])
def test_live_detector_gives_the_batch_fixations(rate_hz, noise_px):
    rng = np.random.default_rng(int(rate_hz))
    gaze = _stream(rng, rate_hz, 60.0, noise_px)
    view = fit_view(1920, 1080, DISPLAY, t_lsl=0.0)
    batch = fixations_from_gaze(gaze, view, DISPLAY)
    chunks = list(rng.integers(1, 40, gaze.size))
    live = run_live(gaze, view, chunks)
    assert batch.size > 100
    assert live.dtype == batch.dtype and live.shape == batch.shape
    for name in batch.dtype.names:
        np.testing.assert_array_equal(live[name], batch[name], err_msg=name)


# noise that leaves most fixations within I-DT's 1 deg dispersion (its ptp + ptp grows with the noise)
@pytest.mark.parametrize(("rate_hz", "noise_px"), [(1000, 1.5), (500, 2.5), (250, 4.0), (60, 2.0)])
def test_live_idt_gives_the_batch_fixations(rate_hz, noise_px):
    rng = np.random.default_rng(int(rate_hz) + 1)
    gaze = _stream(rng, rate_hz, 30.0, noise_px)
    view = fit_view(1920, 1080, DISPLAY, t_lsl=0.0)
    batch = fixations_from_gaze(gaze, view, DISPLAY, method="idt")
    one_by_one = [1] * gaze.size if rate_hz <= 250 else []  # every sample its own chunk
    for chunks in (list(rng.integers(1, 40, gaze.size)), one_by_one, [gaze.size]):
        if not chunks:
            continue
        live = run_live(gaze, view, chunks, method="idt")
        assert batch.size > 30
        assert live.dtype == batch.dtype and live.shape == batch.shape
        for name in batch.dtype.names:
            np.testing.assert_array_equal(live[name], batch[name], err_msg=name)


def test_live_idt_holds_a_fixation_in_progress_and_emits_it_once_broken():
    t = 1000.0 + np.arange(200) / 100.0  # 100 Hz
    g = np.zeros(t.size, GAZE_DTYPE)
    g["t_lsl"], g["flags"] = t, GAZE_VALID
    g["x_screen_px"], g["y_screen_px"] = np.where(t < 1001.0, 500.0, 1500.0), 500.0  # two 1 s fixations
    view = fit_view(1920, 1080, DISPLAY, t_lsl=0.0)
    det = LiveFixationDetector(DISPLAY, method="idt")
    assert det.push(g[:100], view).size == 0  # the first is still in progress at 1000.99 s
    assert det.horizon_lsl == pytest.approx(1000.0)
    first = det.push(g[100:150], view)  # broken by the sample at 1001.0 s; the second in progress
    assert first.size == 1 and first["t_end"][0] == pytest.approx(1000.99)
    assert det.horizon_lsl == pytest.approx(1001.0)  # nothing that ends before the second's start is to come
    last = det.flush(view)
    assert last.size == 1 and (last["t_start"][0], last["t_end"][0]) == pytest.approx((1001.0, 1001.49))


def _two_eyes(n: int, rate_hz: float = 500.0):
    """A steady fixation: left eye at (500, 400), right eye 40 px to its right (calibration offset)."""
    rng = np.random.default_rng(7)
    x = np.stack([500.0 + rng.normal(0, 1, n), 540.0 + rng.normal(0, 1, n)], axis=1)
    y = np.full((n, 2), 400.0) + rng.normal(0, 1, (n, 2))
    return np.arange(n) / rate_hz, x, y, np.ones((n, 2), bool)


def test_one_eye_dropping_out_does_not_move_the_combined_point():
    t, x, y, ok = _two_eyes(500)
    ok[150:250, 1] = False  # right eye lost for 200 ms
    ok[350:400, 0] = False  # then the left one for 100 ms
    cx, cy, valid = BinocularCombiner().combine(x, y, ok)
    assert valid.all()
    assert (
        np.abs(cx - 520.0).max() < 5 and np.abs(cy - 400.0).max() < 5
    )  # the plain lone eye would be 20 px off
    x_deg, y_deg = cx / 40.0, cy / 40.0  # 40 px/deg
    s, e = detect_fixations_ivt(t, x_deg, y_deg, valid, merge_deg=0.0)
    assert (len(s), s[0], e[0]) == (1, 0, t.size - 1)  # one steady fixation stays one


def test_combining_chunk_by_chunk_equals_combining_at_once():
    t, x, y, ok = _two_eyes(600)
    ok[100:300, 0] = False
    whole = BinocularCombiner().combine(x, y, ok)
    comb = BinocularCombiner()
    parts = [comb.combine(x[i : i + 37], y[i : i + 37], ok[i : i + 37]) for i in range(0, 600, 37)]
    for k in range(3):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_the_combiner_tracks_how_far_apart_the_eyes_are():
    _, x, y, ok = _two_eyes(300)
    comb = BinocularCombiner()
    assert np.isnan(comb.disagreement_deg((40.0, 40.0)))
    for i in range(0, 300, 50):
        comb.combine(x[i : i + 50], y[i : i + 50], ok[i : i + 50])
    assert comb.disagreement_deg((40.0, 40.0)) == pytest.approx(eye_disagreement_deg(x, y, ok, (40.0, 40.0)))


def test_eyes_that_disagree_get_a_warning():
    _, x, y, ok = _two_eyes(100)
    assert eye_disagreement_deg(x, y, ok, (40.0, 40.0)) == pytest.approx(1.0, abs=0.05)
    assert disagreement_warning(1.0) is None
    x[:, 1] += 100.0  # 140 px apart: 3.5 deg
    warning = disagreement_warning(eye_disagreement_deg(x, y, ok, (40.0, 40.0)))
    assert warning is not None and "3.5 deg" in warning and "recalibrate" in warning


def test_eye_disagreement_reads_one_snapshot_of_the_offsets():
    """The inlet thread replaces the offsets array while the capture worker asks for the disagreement (the
    provenance written when a case ends): two reads of it could be of different lengths (a ValueError that
    stopped the recorder at a case change). Here every read of ``_seen`` sees a longer array."""
    from radgaze.capture.gazemath.binocular import BinocularCombiner

    class ReplacedBetweenReads(BinocularCombiner):
        reads = 0

        @property
        def _seen(self):
            self.reads += 1
            return np.full((4 + self.reads, 2), 30.0)

        @_seen.setter
        def _seen(self, value):
            pass

    combiner = ReplacedBetweenReads()
    assert combiner.disagreement_deg((30.0, 30.0)) == pytest.approx(np.sqrt(2.0))
