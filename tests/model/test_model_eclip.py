"""eCLIP option: heatmap processor, mixup, curriculum, priming; the model trains a step with it."""

from __future__ import annotations

import pytest
import torch
from model_batches import make_model_batch

from radgaze.model import eclip as ec
from radgaze.model.config import LossConfig, ModelConfig
from radgaze.model.egma import EGMAModel


def test_curriculum_phases_known_values():
    cfg = LossConfig()  # 10 % cold, 30 % warm-up 0.05 -> 0.5, 40 % cool-down 0.5 -> 0.05, then 0.05
    p = [ec.expert_probability(s, 100, cfg) for s in (0, 9, 10, 25, 40, 60, 80, 95)]
    assert p == pytest.approx([0.0, 0.0, 0.05, 0.275, 0.5, 0.275, 0.05, 0.05])
    assert ec.in_cold_start(9, 100, cfg) and not ec.in_cold_start(10, 100, cfg)


def test_expert_batches_follow_the_probability_and_are_reproducible():
    cfg = LossConfig()
    draws = [ec.use_expert_batch(s, 1000, cfg) for s in range(400, 401 + 200)]  # p ~ 0.5 (peak)
    assert 0.35 < sum(draws) / len(draws) < 0.65
    assert draws == [ec.use_expert_batch(s, 1000, cfg) for s in range(400, 401 + 200)]
    assert not any(ec.use_expert_batch(s, 1000, cfg) for s in range(0, 100))  # cold start


def test_mixup_and_lambda():
    x, y = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    mixed = ec.mixup(x, y, torch.tensor([1.0, 0.25]))
    assert mixed[0].max() == 0 and torch.allclose(mixed[1], torch.full((3, 4, 4), 0.75))
    lam = ec.sample_lambda(2000, 0.2, seed=1)
    assert ((lam >= 0) & (lam <= 1)).all()
    assert (lam < 0.1).float().mean() > 0.3 and (lam > 0.9).float().mean() > 0.3  # Beta(0.2, 0.2): U-shaped
    assert torch.equal(lam, ec.sample_lambda(2000, 0.2, seed=1))


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


@pytest.mark.parametrize("step, key", [(0, "eclip_prime_loss"), (None, "eclip_loss")])
def test_eclip_model_trains_a_step(step, key):
    torch.manual_seed(0)
    d = ModelConfig.preset("tiny").to_dict()
    d["eclip"] = True
    d["loss"].update({"eclip_dim": 32, "eclip_heads": 4, "eclip_patch_px": 16})
    model = EGMAModel(ModelConfig.from_dict(d))
    batch = make_model_batch(model, has_gaze=(True, True, False))
    s = model.config.image_size
    batch["heatmap_image"] = torch.rand(3, 1, s, s)
    if step is not None:
        batch.update(step=step, total_steps=100)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
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


def test_eclip_without_heatmaps_adds_a_zero_term():
    torch.manual_seed(0)
    d = ModelConfig.preset("tiny").to_dict()
    d["eclip"] = True
    d["loss"].update({"eclip_dim": 32, "eclip_heads": 4})
    model = EGMAModel(ModelConfig.from_dict(d))
    out = model(make_model_batch(model))
    assert float(out["eclip_loss"].detach()) == 0.0
