"""eCLIP option: heatmap processor, mixup, curriculum, priming; the model trains a step with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_batches import REPORTS, make_model_batch

from radgaze.capture.base.errors import ConfigError
from radgaze.model import eclip as ec
from radgaze.model import losses as L
from radgaze.model.config import LossConfig, ModelConfig
from radgaze.model.egma import EGMAModel


def test_curriculum_phases_known_values():
    cfg = (
        LossConfig()
    )  # reference: p = 0 while step <= 10 % of steps, 0.05 -> 0.5 up to 40 %, -> 0.05 at 80 %
    steps = (0, 9, 10, 11, 25, 40, 41, 60, 80, 81, 95)
    p = [ec.expert_probability(s, 100, cfg) for s in steps]
    assert p == pytest.approx([0.0, 0.0, 0.0, 0.065, 0.275, 0.5, 0.48875, 0.275, 0.05, 0.05, 0.05])
    assert ec.in_cold_start(9, 100, cfg) and not ec.in_cold_start(10, 100, cfg)
    assert ec.phase_steps(105, cfg) == (10, 31, 42)  # int(total * frac) each, as the reference


def test_expert_draws_follow_the_probability_and_come_from_the_training_rng():
    rng = np.random.default_rng(0)
    draws = [ec.draw_expert_step(0.3, 0.2, rng) for _ in range(2000)]
    assert 0.25 < sum(use for use, _ in draws) / len(draws) < 0.35
    assert all(lam == 1.0 for use, lam in draws if not use)  # lambda is drawn only for an expert batch
    lam = np.array([lam for use, lam in draws if use])
    assert (lam < 0.1).mean() > 0.25 and (lam > 0.9).mean() > 0.25  # Beta(0.2, 0.2): U-shaped (~0.34 each)
    assert not any(ec.draw_expert_step(0.0, 0.2, rng)[0] for _ in range(100))
    np.random.seed(5)  # noqa: NPY002 - the trainer seeds (and saves) numpy's global state
    first = [ec.draw_expert_step(1.0, 0.2) for _ in range(3)]
    assert len({lam for _, lam in first}) == 3  # not the same lambda every call
    np.random.seed(5)  # noqa: NPY002
    assert first == [ec.draw_expert_step(1.0, 0.2) for _ in range(3)]  # reproducible from the seed


def test_mixup_one_lambda_or_one_per_sample():
    x, y = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    mixed = ec.mixup(x, y, torch.tensor([1.0, 0.25]))
    assert mixed[0].max() == 0 and torch.allclose(mixed[1], torch.full((3, 4, 4), 0.75))
    torch.testing.assert_close(ec.mixup(x, y, 0.25), torch.full((2, 3, 4, 4), 0.75))


def test_expert_indices_and_copy_mask():
    torch.manual_seed(0)
    has = torch.tensor([True, False, True, True, False, True])
    idx = ec.expert_indices(has, 0.5)
    assert len(idx) == 3 and set(idx.tolist()) <= {0, 2, 3, 5}
    assert len(ec.expert_indices(torch.tensor([True, False, False, False]), 0.5)) == 1
    assert len(ec.expert_indices(torch.zeros(4, dtype=torch.bool), 0.5)) == 0
    mask = ec.copy_mask(3, torch.tensor([0, 2]))  # items 3 and 4 copy samples 0 and 2
    want = torch.zeros(5, 5, dtype=torch.bool)
    want[0, 3] = want[3, 0] = want[2, 4] = want[4, 2] = True
    assert torch.equal(mask, want)


def test_clip_with_copies_excluded_treats_a_copy_like_its_original():
    """An exact copy (expert = main sample 0) without the mask is a second positive (loss >= log 2 on its
    rows); with the mask its rows score exactly as the original's plain CLIP rows."""
    torch.manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(3, 8, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(3, 8, dtype=torch.float64), dim=-1)
    sc = torch.tensor(5.0, dtype=torch.float64)
    idx = torch.tensor([0])
    both_i, both_t = torch.cat([img, img[idx]]), torch.cat([txt, txt[idx]])
    logits = sc * img @ txt.T
    row0 = -torch.log_softmax(logits[0], 0)[0]
    masked = sc * both_i @ both_t.T
    masked = masked.masked_fill(ec.copy_mask(3, idx), float("-inf"))
    assert float(-torch.log_softmax(masked[3], 0)[3]) == pytest.approx(float(row0), abs=1e-12)
    assert float(-torch.log_softmax(masked[0], 0)[0]) == pytest.approx(float(row0), abs=1e-12)
    plain = L.clip_loss(both_i, both_t, sc)["clip_loss"]
    excl = L.clip_loss(both_i, both_t, sc, ec.copy_mask(3, idx))["clip_loss"]
    assert float(plain) > float(excl)


def test_heatmap_processor_shapes_and_heatmap_matters():
    torch.manual_seed(0)
    proc = ec.HeatmapProcessor(dim=32, heads=4, patch_px=16)
    x = torch.randn(2, 3, 64, 64)
    hm = torch.zeros(2, 1, 64, 64)
    hm[:, :, :16, :16] = 1.0
    out = proc(x, hm)
    assert out.shape == x.shape
    hm2 = torch.zeros_like(hm)
    hm2[:, :, 48:, 48:] = 5.0  # same shape of map elsewhere; scale must not matter (divided by max)
    assert not torch.allclose(out, proc(x, hm2))
    torch.testing.assert_close(proc(x, hm * 7.0), out)


def test_heatmaps_are_divided_by_the_batch_maximum_as_the_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    hm = torch.rand(2, 1, 32, 32)
    louder = hm.clone()
    louder[0] *= 4.0  # only sample 0's map is scaled
    batch = ec.HeatmapProcessor(dim=16, heads=2, patch_px=16)
    assert batch.heatmap_norm == "batch"  # the default
    # batch max: sample 1 is now divided by sample 0's larger peak, so its output changes
    assert not torch.allclose(batch(x, hm)[1], batch(x, louder)[1])
    sample = ec.HeatmapProcessor(dim=16, heads=2, patch_px=16, heatmap_norm="sample")
    sample.load_state_dict(batch.state_dict())
    torch.testing.assert_close(sample(x, hm), sample(x, louder))  # each map by its own peak


@pytest.mark.slow  # 33 s at load 9 on 2 cores
def test_priming_loss_decreases_when_trained():
    torch.manual_seed(0)
    proc = ec.HeatmapProcessor(dim=64, heads=4, patch_px=4)  # 48 values per patch fit through 64
    x = torch.randn(4, 3, 32, 32)
    opt = torch.optim.Adam(proc.parameters(), lr=3e-3)
    first = float(ec.priming_loss(proc, x).detach())
    for _ in range(60):
        loss = ec.priming_loss(proc, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(ec.priming_loss(proc, x).detach()) < 0.5 * first


def _eclip_model(**loss) -> EGMAModel:
    torch.manual_seed(0)
    d = ModelConfig.preset("tiny").to_dict()
    d["eclip"] = True
    d["loss"].update({"eclip_dim": 32, "eclip_heads": 4, "eclip_patch_px": 16, **loss})
    model = EGMAModel(ModelConfig.from_dict(d))
    for m in model.modules():  # deterministic features, so the terms can be recomputed here
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if hasattr(m, "drop_prob"):  # timm DropPath (stochastic depth)
            m.drop_prob = 0.0
    return model


def _eclip_batch(model, has_gaze=(True, True, False)) -> dict:
    batch = make_model_batch(model, has_gaze=has_gaze)
    s = model.config.image_size
    batch["heatmap_image"] = torch.rand(3, 1, s, s, generator=torch.Generator().manual_seed(3))
    return batch


def _main_clip(model, batch) -> float:
    _, glob = model.encode_image(batch["image"])
    _, report = model.encode_text(batch["input_ids"], batch["attention_mask"], batch["sentence_mask"])
    return float(L.clip_loss(glob, report, model.scale())["clip_loss"].detach())


@pytest.mark.parametrize("step, key", [(0, "eclip_prime_loss"), (None, "eclip_loss")])
def test_eclip_model_trains_a_step(step, key):
    model = _eclip_model()
    batch = _eclip_batch(model)
    if step is not None:
        batch.update(step=step, total_steps=100)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    np.random.seed(0)  # noqa: NPY002 - the training RNG the expert draw comes from
    out = model(batch)
    assert key in out and float(out[key].detach()) > 0
    loss = sum(v for k, v in out.items() if k.endswith("_loss"))
    loss.backward()
    proc_grads = [p.grad for p in model.heatmap_processor.parameters()]
    assert all(g is not None for g in proc_grads) and sum(float(g.abs().sum()) for g in proc_grads) > 0
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert any(n.startswith("heatmap_processor.") for n in changed)
    assert any(n.startswith("image_encoder.") for n in changed)


def test_cold_start_is_07_clip_plus_03_mse():
    model = _eclip_model()
    batch = _eclip_batch(model)
    batch.update(step=3, total_steps=100)
    out = model(batch)
    assert float(out["eclip_loss"].detach()) == pytest.approx(0.7 * _main_clip(model, batch), rel=1e-5)
    mse = float(ec.priming_loss(model.heatmap_processor, batch["image"]).detach())
    assert float(out["eclip_prime_loss"].detach()) == pytest.approx(0.3 * mse, rel=1e-5)


def test_expert_batch_is_half_the_batch_appended_to_the_main_one():
    model = _eclip_model()
    batch = make_model_batch(model, reports=REPORTS * 2, has_gaze=(True, True, False, True, True, True))
    s = model.config.image_size
    batch["heatmap_image"] = torch.rand(6, 1, s, s, generator=torch.Generator().manual_seed(3))
    np.random.seed(0)  # noqa: NPY002
    out = model(batch)  # no step: curriculum off, p = 1
    assert float(out["eclip_experts"]) == 3.0  # B // 2 of the 5 samples with heatmaps
    assert 0.0 <= float(out["eclip_lambda"]) <= 1.0
    # one CLIP over 6 + 3 pairs: differs from the main batch's CLIP alone
    assert float(out["eclip_loss"].detach()) != pytest.approx(_main_clip(model, batch), rel=1e-6)
    batch.update(step=10, total_steps=100)  # p = 0 at the last cold-start step boundary: main CLIP only
    out = model(batch)
    assert "eclip_experts" not in out and "eclip_prime_loss" not in out
    assert float(out["eclip_loss"].detach()) == pytest.approx(_main_clip(model, batch), rel=1e-5)


def test_eclip_in_eval_mode_is_main_clip_and_leaves_the_rng_alone():
    model = _eclip_model().eval()
    batch = _eclip_batch(model)
    state = np.random.get_state()  # noqa: NPY002
    out = model(batch)
    assert float(out["eclip_loss"].detach()) == pytest.approx(_main_clip(model, batch), rel=1e-5)
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002


def test_eclip_without_heatmaps_is_the_main_clip():
    model = _eclip_model()
    batch = make_model_batch(model)
    out = model(batch)
    assert "eclip_experts" not in out
    assert float(out["eclip_loss"].detach()) == pytest.approx(_main_clip(model, batch), rel=1e-5)


def test_eclip_config_rejects_a_second_global_clip_and_processor_gets_twice_the_lr():
    d = ModelConfig.preset("tiny").to_dict()
    d["eclip"] = True
    d["loss"]["losses"] = ["clip", "egf"]
    with pytest.raises(ConfigError, match="eclip"):
        ModelConfig.from_dict(d)
    from radgaze.training.trainer import param_groups

    model = _eclip_model()
    groups = param_groups(model, 1e-4, 1e-3)
    proc = {id(p) for p in model.heatmap_processor.parameters()}
    for g in groups:
        in_proc = {id(p) in proc for p in g["params"]}
        assert len(in_proc) == 1  # a group is all processor or none of it
        assert g.get("lr", 1e-3) == pytest.approx(2e-3 if in_proc == {True} else 1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(param_groups(model, 1e-4)) == 2  # without lr: the two weight-decay groups as before
