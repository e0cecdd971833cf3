"""Vectorized EGMA losses vs the per-sample loop references (float64), known answers, gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from radgaze.model import losses as L
from radgaze.model import losses_loop as R
from radgaze.model.config import LossConfig

PAPER = LossConfig()
REFERENCE = LossConfig.reference_code()
MIXED = LossConfig(
    filip_t2i_over_images=False, egm_threshold=0.2, egm_smoothing=0.05, mlce_label_min_frac=0.3
)
MINMAX = LossConfig(egm_omega="minmax", egm_gaze_mix_patch="add", egm_single_sentence="mse")
HALF = LossConfig(
    egm_omega="minmax", egm_gaze_mix="half_gaze", egm_gaze_mix_patch="mean", egm_no_gaze_weights=(0.2, 0.8)
)
CONFIGS = {"paper": PAPER, "reference": REFERENCE, "mixed": MIXED, "minmax": MINMAX, "half": HALF}
SCALE = 1.0 / 0.07


def make_batch(seed: int, b: int = 6, m: int = 12, n: int = 9, d: int = 8, dtype=torch.float64, grad=False):
    """Normalised features; reports of 1..m sentences (one of exactly 1, one of exactly m); gaze on some
    samples, with some gazed samples having empty rows; has_gaze False for others (whose gaze is junk)."""
    g = torch.Generator().manual_seed(seed)
    n_sent = torch.randint(1, m + 1, (b,), generator=g)
    n_sent[0], n_sent[1] = 1, m
    mask = torch.arange(m)[None] < n_sent[:, None]
    patches = F.normalize(torch.randn(b, n, d, generator=g, dtype=dtype), dim=-1)
    sentences = F.normalize(torch.randn(b, m, d, generator=g, dtype=dtype), dim=-1) * mask[..., None]
    raw = torch.rand(b, m, n, generator=g, dtype=dtype) * (torch.rand(b, m, n, generator=g) < 0.4)
    raw[2, 0] = 0.0  # a gazed sample with an empty sentence row
    gaze = (raw / raw.sum(-1, keepdim=True).clamp_min(1e-12)) * mask[..., None]
    has_gaze = torch.tensor([True, True, True, False, True, False] * (b // 6 + 1))[:b]
    if grad:
        patches.requires_grad_(True)
        sentences.requires_grad_(True)
    return patches, sentences, mask, gaze, has_gaze


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_loss_matches_its_loop_reference(seed, name):
    cfg = CONFIGS[name]
    p, s, mask, gaze, hg = make_batch(seed)
    sc = torch.tensor(SCALE, dtype=torch.float64)
    img, txt = p.mean(1), F.normalize(s.sum(1), dim=-1)
    pairs = {
        "clip": (L.clip_loss(img, txt, sc)["clip_loss"], R.clip_loop(img, txt, SCALE)),
        "filip": (L.filip_loss(p, s, mask, sc, cfg)["filip_loss"], R.filip_loop(p, s, mask, SCALE, cfg)),
        "mlce": (
            L.mlce_loss(p, s, mask, gaze, hg, sc, cfg)["mlce_loss"],
            R.mlce_loop(p, s, mask, gaze, hg, SCALE, cfg),
        ),
        "egm": (
            L.egm_loss(p, s, mask, gaze, hg, sc, cfg)["egm_loss"],
            R.egm_loop(p, s, mask, gaze, hg, SCALE, cfg),
        ),
    }
    for term, (fast, slow) in pairs.items():
        assert torch.isfinite(fast), term
        assert float(fast) == pytest.approx(float(slow), abs=1e-10, rel=1e-10), term


@pytest.mark.parametrize("name", ["paper", "reference"])
def test_gradients_match_loop_reference(name):
    """clip / filip / mlce loops are differentiable torch ops: their gradients must agree too."""
    cfg = CONFIGS[name]
    p, s, mask, gaze, hg = make_batch(3, grad=True)
    sc = torch.tensor(SCALE, dtype=torch.float64)
    fast = (
        L.filip_loss(p, s, mask, sc, cfg)["filip_loss"]
        + L.mlce_loss(p, s, mask, gaze, hg, sc, cfg)["mlce_loss"]
    )
    gp_fast, gs_fast = torch.autograd.grad(fast, (p, s))
    slow = R.filip_loop(p, s, mask, SCALE, cfg) + R.mlce_loop(p, s, mask, gaze, hg, SCALE, cfg)
    gp_slow, gs_slow = torch.autograd.grad(slow, (p, s))
    torch.testing.assert_close(gp_fast, gp_slow, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(gs_fast, gs_slow, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("term", ["clip", "filip", "mlce", "egm"])
def test_gradient_flows_to_real_features_only(term):
    p, s, mask, gaze, hg = make_batch(4, grad=True)
    sc = torch.tensor(SCALE, dtype=torch.float64, requires_grad=True)
    if term == "clip":
        loss = L.clip_loss(p.mean(1), F.normalize(s.sum(1), dim=-1), sc)["clip_loss"]
    elif term == "filip":
        loss = L.filip_loss(p, s, mask, sc, PAPER)["filip_loss"]
    elif term == "mlce":
        loss = L.mlce_loss(p, s, mask, gaze, hg, sc, LossConfig(mlce_scaled_by_temperature=True))["mlce_loss"]
    else:
        loss = L.egm_loss(p, s, mask, gaze, hg, sc, PAPER)["egm_loss"]
    loss.backward()
    for t in (p.grad, s.grad, sc.grad):
        assert torch.isfinite(t).all()
    assert p.grad.abs().sum() > 0 and s.grad[mask].abs().sum() > 0 and sc.grad.abs() > 0
    if term in ("filip", "mlce", "egm"):  # padded sentence slots take no part
        assert s.grad[~mask].abs().max() == 0


def test_mlce_only_for_samples_with_gaze():
    p, s, mask, gaze, hg = make_batch(5, grad=True)
    sc = torch.tensor(SCALE, dtype=torch.float64)
    base = L.mlce_loss(p, s, mask, gaze, hg, sc, PAPER)
    junk = gaze.clone()
    junk[~hg] = torch.rand_like(junk[~hg])  # gaze rows of no-gaze samples must be ignored
    assert float(L.mlce_loss(p, s, mask, junk, hg, sc, PAPER)["mlce_loss"].detach()) == float(
        base["mlce_loss"].detach()
    )
    assert float(base["mlce_gaze_samples"]) == int(hg.sum())
    per_gaze = L.mlce_loss(p, s, mask, gaze, hg, sc, LossConfig(mlce_per_gaze_sample=True))["mlce_loss"]
    b = p.shape[0]  # Eq. 5 divides by b; the reference code by the number of gaze samples
    assert float(per_gaze.detach()) == pytest.approx(float(base["mlce_loss"].detach()) * b / int(hg.sum()))
    none = L.mlce_loss(p, s, mask, gaze, torch.zeros_like(hg), sc, PAPER)
    assert float(none["mlce_loss"].detach()) == 0.0 and none["mlce_loss"].requires_grad
    (g,) = torch.autograd.grad(base["mlce_loss"], p)
    assert g[~hg].abs().max() == 0 and g[hg].abs().sum() > 0


def test_gaze_labels_threshold_relative_to_the_row_maximum():
    gaze = torch.tensor([[[0.5, 0.3, 0.15, 0.05], [0.0, 0.0, 0.0, 0.0]]])
    assert L.gaze_labels(gaze).tolist() == [[[True, True, True, True], [False] * 4]]
    assert L.gaze_labels(gaze, 0.2).tolist() == [[[True, True, True, False], [False] * 4]]
    assert L.gaze_labels(gaze, 0.5).tolist() == [[[True, True, False, False], [False] * 4]]


def test_mlce_rows_known_answer():
    scores = torch.tensor([[0.0, 0.0, 2.0]])
    labels = torch.tensor([[True, False, False]])
    cols = torch.tensor([[True, True, False]])  # third column does not exist
    expected = math.log(1 + math.exp(0.0)) + math.log(1 + math.exp(-0.0))
    assert float(L.mlce_rows(scores, labels, cols)[0]) == pytest.approx(expected)
    labels2 = torch.tensor([[True, False, True]])
    cols2 = torch.ones_like(labels2)
    expected2 = math.log(1 + 1.0) + math.log(1 + math.exp(-0.0) + math.exp(-2.0))
    assert float(L.mlce_rows(scores, labels2, cols2)[0]) == pytest.approx(expected2)


def test_reference_code_preset_differs_from_paper_in_every_documented_option():
    ref, paper = LossConfig.reference_code(), LossConfig()
    changed = {k for k in vars(paper) if getattr(paper, k) != getattr(ref, k)}
    assert changed == {
        "losses", "mlce_weight_s2p", "mlce_weight_p2s", "mlce_scaled_by_temperature", "mlce_per_gaze_sample",
        "mlce_empty_rows_negative", "filip_mask_padded", "filip_t2i_over_images", "egm_omega",
        "egm_threshold", "egm_smoothing", "egm_gaze_mix", "egm_gaze_mix_patch", "egm_no_gaze_threshold",
        "egm_no_gaze_weights", "egm_normalize_mapped", "egm_single_sentence", "egm_weight_patch",
        "egm_weight_sentence",
    }  # fmt: skip
    assert ref.losses == ("egf",)  # the reference trains FILIP + MLCE only
    assert (ref.mlce_weight_s2p, ref.egm_threshold, ref.egm_smoothing) == (0.8, 3 / 7, 0.01)
    assert LossConfig.reference_code(egm_smoothing=0.0).egm_smoothing == 0.0


def test_clip_loss_known_answer():
    a = torch.eye(2, dtype=torch.float64)
    sc = torch.tensor(2.0, dtype=torch.float64)
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 1.0))  # logits [2, 0] both ways
    assert float(L.clip_loss(a, a, sc)["clip_loss"]) == pytest.approx(expected)


def test_filip_padded_slots_are_masked_and_reference_defect_differs():
    p, s, mask, _, _ = make_batch(6)
    sc = torch.tensor(SCALE, dtype=torch.float64)
    loss = L.filip_loss(p, s, mask, sc, PAPER)["filip_loss"]
    junk = s.clone()
    junk[~mask] = F.normalize(torch.randn_like(junk[~mask]), dim=-1)  # garbage in padded slots
    assert float(L.filip_loss(p, junk, mask, sc, PAPER)["filip_loss"]) == pytest.approx(
        float(loss), abs=1e-12
    )
    defect = L.filip_loss(p, s, mask, sc, LossConfig(filip_mask_padded=False))["filip_loss"]
    assert abs(float(defect) - float(loss)) > 1e-6


def test_filip_scores_known_answer_and_t2i_direction():
    # 2 images x 2 patches, 2 texts (text 1 has one real sentence), D = 2.
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    i2t, t2i = L.filip_scores(L.all_pair_similarity(p, s), mask)
    # image 0 vs text 1: patches (1,0),(0,1) vs sentence (0,1): max per patch 0, 1 -> mean 0.5
    torch.testing.assert_close(i2t, torch.tensor([[1.0, 0.5], [1.0, 0.0]]))
    # text 0 vs image 1: sentences (1,0),(0,1) -> best patch 1, 0 -> mean 0.5
    torch.testing.assert_close(t2i, torch.tensor([[1.0, 0.5], [1.0, 0.0]]))
    sc = torch.tensor(1.0)
    right = L.filip_loss(p, s, mask, sc, PAPER)["filip_t2i"]
    expected = 0.5 * (
        -math.log(math.exp(1) / (math.exp(1) + math.exp(0.5))) - math.log(math.exp(0) / (math.exp(1) + 1))
    )  # rows of t2i (texts), softmax over images
    assert float(right) == pytest.approx(expected, rel=1e-6)
    wrong = L.filip_loss(p, s, mask, sc, LossConfig(filip_t2i_over_images=False))["filip_t2i"]
    assert abs(float(wrong) - expected) > 1e-3


def test_omega_known_answer_and_constant_rows():
    x = torch.tensor([[0.0, 0.5, 1.0, 0.25], [3.0, 3.0, 3.0, 3.0]])
    cols = torch.ones_like(x, dtype=torch.bool)
    out = L.omega(x, cols, None)  # threshold 1/4 after min-max
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.5, 1.0, 0.25], [1.0, 1.0, 1.0, 1.0]]))
    out = L.omega(x, cols, 3 / 7)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 0.5, 1.0, 0.0]))
    binary = L.omega(x, cols, None, binary=True)  # the paper's "sparse and binarize"
    torch.testing.assert_close(binary, torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    masked = L.omega(torch.tensor([[5.0, 0.0, 1.0]]), torch.tensor([[False, True, True]]), None)
    torch.testing.assert_close(masked, torch.tensor([[0.0, 0.0, 1.0]]))


def test_egm_weights_rows_sum_to_one_and_gaze_adds_to_omega():
    x = torch.tensor([[[0.0, 1.0, 0.5]]])
    cols = torch.ones_like(x, dtype=torch.bool)
    gaze = torch.tensor([[[1.0, 0.0, 0.0]]])
    on, off = torch.tensor([True]), torch.tensor([False])
    # paper: omega = binarise(sparse(minmax)): minmax [0, 1, .5] >= 1/3 -> [0, 1, 1]; + gaze -> [1, 1, 1] / 3
    torch.testing.assert_close(L.egm_weights(x, gaze, on, cols, PAPER), torch.full((1, 1, 3), 1 / 3))
    torch.testing.assert_close(L.egm_weights(x, gaze, off, cols, PAPER), torch.tensor([[[0.0, 0.5, 0.5]]]))
    # min-max omega (the option): [0, 1, .5] + [1, 0, 0] -> [1, 1, .5] / 2.5
    torch.testing.assert_close(L.egm_weights(x, gaze, on, cols, MINMAX), torch.tensor([[[0.4, 0.4, 0.2]]]))
    w0 = L.egm_weights(x, gaze, off, cols, MINMAX)  # no gaze: omega alone
    torch.testing.assert_close(w0, torch.tensor([[[0.0, 1.0 / 1.5, 0.5 / 1.5]]]))
    ref = L.egm_weights(x, gaze, on, cols, REFERENCE)
    # reference sentence side: (minmax + G)/2 = [.5, .5, .25] -> < 3/7 dropped -> [.5, .5, 0] + .01
    torch.testing.assert_close(ref, torch.tensor([[[0.51, 0.51, 0.01]]]) / 1.03)
    half = L.egm_weights(x, gaze, on, cols, REFERENCE, "half_gaze")
    # reference patch side: minmax + G/2 = [.5, 1, .5] (the precedence slip) -> all kept, + .01
    torch.testing.assert_close(half, torch.tensor([[[0.51, 1.01, 0.51]]]) / 2.03)
    # reference samples without gaze: minmax thresholded at 1/7: [0, 1, .5] + .01
    ref0 = L.egm_weights(x, gaze, off, cols, REFERENCE)
    torch.testing.assert_close(ref0, torch.tensor([[[0.01, 1.01, 0.51]]]) / 1.53)


def test_egm_gaze_changes_loss_only_where_present():
    p, s, mask, gaze, hg = make_batch(7)
    sc = torch.tensor(SCALE, dtype=torch.float64)
    with_gaze = float(L.egm_loss(p, s, mask, gaze, hg, sc, PAPER)["egm_loss"])
    no_gaze = float(L.egm_loss(p, s, mask, gaze, torch.zeros_like(hg), sc, PAPER)["egm_loss"])
    assert with_gaze != pytest.approx(no_gaze)
    junk = gaze.clone()
    junk[~hg] = torch.rand_like(junk[~hg])
    assert float(L.egm_loss(p, s, mask, junk, hg, sc, PAPER)["egm_loss"]) == pytest.approx(
        with_gaze, abs=1e-12
    )


def test_single_sentence_reports_and_float32_agree_with_float64():
    p, s, mask, gaze, hg = make_batch(8, m=1)
    sc = torch.tensor(SCALE, dtype=torch.float64)
    out64 = {k: float(v) for k, v in L.egm_loss(p, s, mask, gaze, hg, sc, MINMAX).items()}
    assert out64["egm_patch"] == 0.0  # m = 1: no patch-side contrast (its floor would be log n)
    assert out64["egm_loss"] == pytest.approx(
        float(R.egm_loop(p, s, mask, gaze, hg, SCALE, MINMAX)), abs=1e-10
    )
    out32 = L.egm_loss(p.float(), s.float(), mask, gaze.float(), hg, sc.float(), MINMAX)
    assert float(out32["egm_loss"]) == pytest.approx(out64["egm_loss"], rel=1e-4)


def test_egm_for_one_sentence_is_zero_and_sends_no_gradient():
    """Paper default: a one-sentence report adds 0 to L_EGM (both sides) and its features get no gradient
    from it, while the other samples still count in Eq. 8's 1/b."""
    p, s, mask, gaze, hg = make_batch(9, grad=True)  # sample 0 has exactly one sentence
    sc = torch.tensor(SCALE, dtype=torch.float64)
    out = L.egm_loss(p, s, mask, gaze, hg, sc, PAPER)
    gp, gs = torch.autograd.grad(out["egm_loss"], (p, s))
    assert gp[0].abs().max() == 0 and gs[0].abs().max() == 0
    assert gp[1:].abs().sum() > 0
    alone = L.egm_loss(p[:1], s[:1], mask[:1], gaze[:1], hg[:1], sc, PAPER)
    assert float(alone["egm_loss"].detach()) == 0.0 and float(alone["egm_sentence"]) == 0.0
    rest = L.egm_loss(p[1:], s[1:], mask[1:], gaze[1:], hg[1:], sc, PAPER)["egm_loss"]
    b = p.shape[0]
    assert float(out["egm_loss"].detach()) == pytest.approx(float(rest.detach()) * (b - 1) / b, abs=1e-12)


def test_egm_one_sentence_reference_form_is_the_summed_squared_error():
    """Reference (m = 1): sentence side sum_d (Cross_S - S)^2 with Cross_S not normalised, patch side 0."""
    p, s, mask, gaze, hg = make_batch(10, m=1)
    sc = torch.tensor(SCALE, dtype=torch.float64)
    out = L.egm_loss(p, s, mask, gaze, hg, sc, REFERENCE)
    x = torch.einsum("bmd,bnd->bmn", s, p)
    gs = gaze / gaze.amax(-1, keepdim=True).clamp_min(1e-12)
    w = L.egm_weights(x, gs, hg, torch.ones_like(x, dtype=torch.bool), REFERENCE)
    sq = ((w @ p - s) ** 2).sum((1, 2))
    wt = torch.tensor(
        [0.3 if h else 0.5 for h in hg.tolist()], dtype=sq.dtype
    )  # sentence weight: 0.3 with gaze, 1/2 without
    assert float(out["egm_loss"]) == pytest.approx(float((wt * sq).mean()), abs=1e-12)
    assert float(out["egm_patch"]) == 0.0


def test_default_total_is_the_papers_egf_plus_egm():
    assert LossConfig().losses == ("egf", "egm")
    assert LossConfig().egm_omega == "binary"
    from radgaze.model.config import ModelConfig
    from radgaze.training.config import load_config

    for name in ("paper", "tiny", "bench"):
        assert ModelConfig.preset(name).loss.losses == ("egf", "egm"), name
    for name in ("paper", "tiny"):  # the shipped training configs follow the default
        assert load_config(name).model_config().loss.losses == ("egf", "egm"), name


@pytest.mark.parametrize(
    "loss, name",
    [
        ({"egm_gaze_mix": "mean"}, "egm_omega"),  # the averaged mixes are defined on min-max values
        ({"egm_omega": "sparse"}, "egm_omega"),
        ({"egm_gaze_mix_patch": "max", "egm_omega": "minmax"}, "egm_gaze_mix_patch"),
        ({"egm_single_sentence": "drop"}, "egm_single_sentence"),
        ({"egm_no_gaze_weights": [0.5]}, "egm_no_gaze_weights"),
        ({"egm_no_gaze_threshold": 1.5}, "egm_no_gaze_threshold"),
    ],
)
def test_loss_options_are_validated(loss, name):
    from radgaze.capture.base.errors import ConfigError
    from radgaze.model.config import ModelConfig

    with pytest.raises(ConfigError, match=name):
        ModelConfig.from_dict({"loss": loss})


def test_reference_preset_round_trips_through_json():
    import json

    from radgaze.model.config import ModelConfig

    cfg = ModelConfig(loss=LossConfig.reference_code())
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.loss.egm_no_gaze_weights == (0.5, 0.5)
