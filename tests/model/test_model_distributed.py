"""Feature gathering across ranks: identity in one process; under 2 gloo ranks the gathered-loss gradient
(averaged over ranks as DDP does) equals the one-process full-batch gradient, for features and temperature;
eCLIP's expert draw is rank 0's on every rank."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from radgaze.model import distributed as du
from radgaze.model import eclip as ec
from radgaze.model.losses import clip_loss


def test_identity_in_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert du.world_size() == 1 and du.rank() == 0
    assert du.gather_with_local_grad(x) is x
    assert du.max_over_ranks(5, x.device) == 5
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    assert du.broadcast_from_rank0(t) is t


def test_pad_dim():
    x = torch.ones(2, 3, dtype=torch.bool)
    y = du.pad_dim(x, 1, 5, False)
    assert y.shape == (2, 5) and y[:, 3:].sum() == 0 and y[:, :3].all()
    assert du.pad_dim(x, 1, 3) is x


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, img: torch.Tensor, txt: torch.Tensor, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        b = img.shape[0] // world
        local_i = img[rank * b : (rank + 1) * b].clone().requires_grad_(True)
        local_t = txt[rank * b : (rank + 1) * b].clone().requires_grad_(True)
        assert du.max_over_ranks(rank + 3, local_i.device) == world + 2
        gathered = du.gather_with_local_grad(local_i), du.gather_with_local_grad(local_t)
        scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
        loss = clip_loss(*gathered, scale)
        loss["clip_loss"].backward()
        # DDP averages parameter gradients over ranks: sum_r J_r^T g_r / world. The gather multiplies the
        # local shard's gradient by world, so g_r / world must be exactly the full-batch gradient of the
        # local shard; the temperature's gradient, averaged over ranks, must be the full-batch one.
        g = torch.cat([local_i.grad, local_t.grad]) / world
        np.random.seed(100 + rank)  # noqa: NPY002 - ranks' training RNGs differ; eCLIP's draw must not
        lam = ec.draw_expert_step(1.0, 0.2)[1]
        out[rank] = (float(loss["clip_loss"].detach()), g, float(scale.grad), lam)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_rank_gather_matches_full_batch_gradient():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=-1)
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), img, txt, out), nprocs=2, join=True)
    full_i, full_t = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    full = clip_loss(full_i, full_t, scale)["clip_loss"]
    full.backward()
    assert (out[0][2] + out[1][2]) / 2 == pytest.approx(float(scale.grad), rel=1e-10)
    np.random.seed(100)  # noqa: NPY002
    assert out[0][3] == out[1][3] == ec.draw_expert_step(1.0, 0.2)[1]  # rank 0's draw on every rank
    for r in (0, 1):
        value, g, _, _ = out[r]
        assert value == pytest.approx(float(full.detach()), abs=1e-12)
        expected = torch.cat([full_i.grad[r * 3 : (r + 1) * 3], full_t.grad[r * 3 : (r + 1) * 3]])
        torch.testing.assert_close(g, expected, atol=1e-12, rtol=1e-10)
