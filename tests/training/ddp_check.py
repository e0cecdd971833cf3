"""Run under ``torchrun --nproc_per_node 2`` on CPU (gloo) by test_training_ddp.py; not collected by pytest.

argv: SESSIONS OUT [TRAIN_FROM]. Checks, on every rank, then trains a tiny run under DDP (on TRAIN_FROM when
given, e.g. a prepared dataset, else on SESSIONS):
1. radgaze.model.distributed.gather_with_local_grad: the gathered tensor is every rank's shard in rank order, and the
   gradient reaches only the local shard.
2. The EGMA loss on a batch split over two ranks, with DDP-averaged gradients, equals the full-batch loss and
   gradients computed in one process (computed here before the process group exists).
3. radgaze.training.trainer.train under torchrun finishes with world_size 2 and identical weights on both ranks.
Writes OUT/rank{r}.json with the findings; exits non-zero on a failed check. Also run across two torchrun
"nodes" on loopback (c10d rendezvous) by the same test module.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as tdist


def main() -> int:
    sessions, out = Path(sys.argv[1]), Path(sys.argv[2])
    train_from = Path(sys.argv[3]) if len(sys.argv) > 3 else sessions
    out.mkdir(parents=True, exist_ok=True)
    from radgaze.model.distributed import gather_with_local_grad
    from radgaze.training import data as tdata
    from radgaze.training.config import load_config
    from radgaze.training.dist import init_distributed
    from radgaze.training.trainer import build_model, prepare_data, train

    torch.set_num_threads(1)
    cfg = load_config("tiny", ["batch_size=4", "epochs=2", "eval_at_end=false", "data.augment=false"])
    # ---- reference, single process (no process group yet): full batch of 8
    torch.manual_seed(0)
    model, mcfg = build_model(cfg, out / "ref")
    model.eval()  # no dropout: the two computations must see the same function
    rd = prepare_data(cfg, sessions, mcfg=mcfg, n_side=int(model.patch_grid))
    full = tdata.collate([rd.train[i] for i in range(8)])
    assert bool(full["has_gaze"].all()), "every case of the check batch needs gaze (equal MLCE normalisers)"
    mb = tdata.model_batch(model, full, torch.device("cpu"))
    terms = {k: v for k, v in model(mb).items() if k.endswith("_loss")}
    ref_loss = sum(terms.values())
    ref_loss.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    ctx = init_distributed("cpu")
    r, w = ctx.rank, ctx.world_size
    result = {"rank": r, "world_size": w, "backend": ctx.backend}
    # ---- 1. all-gather
    x = torch.full((3, 2), float(r + 1), requires_grad=True)
    g = gather_with_local_grad(x)
    expect = torch.cat([torch.full((3, 2), float(k + 1)) for k in range(w)])
    result["gather_values_ok"] = bool(torch.equal(g.detach(), expect))
    (g * torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape)).sum().backward()
    local_coeff = torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape)[r * 3 : (r + 1) * 3]
    # the local shard's gradient comes back multiplied by the world size (DDP's average divides it again)
    result["gather_grad_ok"] = bool(torch.equal(x.grad, w * local_coeff))
    # ---- 2. split batch under DDP == full batch in one process
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    half = tdata.collate([rd.train[i] for i in range(4 * r, 4 * r + 4)])
    hb = tdata.model_batch(model, half, torch.device("cpu"))
    loss = sum(v for k, v in ddp(hb).items() if k.endswith("_loss"))
    loss.backward()
    mean_loss = loss.detach().clone()
    tdist.all_reduce(mean_loss)
    mean_loss /= w
    result["loss_full"] = float(ref_loss)
    result["loss_split_mean"] = float(mean_loss)
    result["loss_ok"] = bool(torch.allclose(mean_loss, ref_loss.detach(), rtol=1e-5, atol=1e-6))
    errs = {}
    for n, p in model.named_parameters():
        if n in ref_grads and p.grad is not None:
            scale = float(ref_grads[n].abs().max()) + 1e-8
            errs[n] = float((p.grad - ref_grads[n]).abs().max()) / scale
    result["grad_rel_err"] = errs
    result["grad_ok"] = max(v for k, v in errs.items() if k != "logit_scale") < 1e-3
    result["logit_scale_grad_ok"] = errs.get("logit_scale", 0.0) < 1e-3
    del ddp
    tdist.barrier()
    # ---- 3. a real DDP training run
    cfg.data.augment = True
    report = train(cfg, train_from, out / "run", show_bar=False)  # joins the existing group; shuts it down
    result["train_world_size"] = report["world_size"]
    result["train_finished"] = report["finished"]
    result["train_steps"] = report["steps"]
    result["train_prepared"] = report["data"]["prepared"]
    result["node"] = {
        k: os.environ.get(k) for k in ("GROUP_RANK", "LOCAL_RANK", "RANK", "TORCHELASTIC_RUN_ID")
    }
    (out / f"rank{r}.json").write_text(json.dumps(result))
    return 0  # the test asserts on the JSON (so one failed check does not hide the others)


if __name__ == "__main__":
    sys.exit(main())
