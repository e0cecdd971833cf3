"""``radgaze bench train``: training throughput of the ``paper`` model fed from the prepared dataset, and its MFU.

Synthetic sessions are prepared (:mod:`radgaze.training.prepared`) and fed through the trainer's own DataLoader
(:func:`radgaze.training.trainer._loader`: workers, pinned memory, augmentation) into the trainer's step (AMP
bf16, AdamW, grad clipping). After warm-up steps each timed step is split into

* ``data_wait_s``: waiting for the loader's next collated batch (time the GPU would sit idle for data);
* ``host_s``: tokenising the reports and the (non-blocking) copy to the device (:func:`data.model_batch`);
* ``compute_s``: forward, backward and optimiser step, ended by a device synchronise.

Reported: samples/s (batch / mean step time), the breakdown and its fractions, peak device memory, MFU and
the projected time for 50 epochs over 3,700 samples (EGMA's MIMIC-EYE pretraining set size and epochs).
FLOPs are *counted*, not estimated from parameter counts: one step runs under torch's FlopCounterMode, which
adds the analytic FLOPs of every matmul, convolution and attention kernel of forward and backward (2 per
multiply-add; element-wise ops and the optimiser are not counted). MFU = counted FLOPs per step / mean step time
/ the GPU's dense bf16 peak. The paper's text encoder (Bio_ClinicalBERT) cannot be downloaded here, so a
random BERT of the same shape (12 layers, hidden 768, 12 heads, FFN 3072) stands in: throughput depends on the
shape, not the weights.

Without CUDA nothing is measured: the JSON carries nulls and says so (``--device cpu`` runs the same code
on the CPU as a smoke test; its figures say nothing about a GPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from radgaze.capture.base.report import bench_result, print_result

# Goal (issue 5, section 6): >= 35 % model FLOPs utilisation.
GOALS = {"mfu": (">=", 0.35)}
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets (NVIDIA H100 SXM / H200: 989.4 TFLOP/s;
# H100 PCIe: 756 TFLOP/s; A100: 312 TFLOP/s), matched on the CUDA device name.
PEAK_BF16_FLOPS = {"H200": 989.4e12, "H100 PCIe": 756e12, "H100": 989.4e12, "A100": 312e12}
# EGMA pretraining: MIMIC-EYE's ~3,700 image-report-gaze samples, 50 epochs (paper, pre-training settings).
PAPER_SAMPLES, PAPER_EPOCHS = 3700, 50
# Bio_ClinicalBERT's shape (bert-base-cased: 12 layers, hidden 768, 12 heads, FFN 3072, vocab 28,996).
BIO_CLINICAL_BERT_SHAPE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}  # the vocabulary stays the tiny tokenizer's (the embedding lookup costs next to nothing)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return value
    return None


PROJECTED_KEY = f"time_{PAPER_EPOCHS}_epochs_{PAPER_SAMPLES}_samples_s"
FLOPS_METHOD = (
    "torch.utils.flop_counter.FlopCounterMode over one full step (forward + backward): analytic FLOPs of "
    "matmul/conv/attention ops, 2 per multiply-add; element-wise ops and the optimiser not counted"
)


def not_measured(reason: str) -> dict:
    return {
        "measured": False,
        "reason": reason,
        "device": None,
        "samples_per_s": None,
        "mfu": None,
        "step_s": None,
        "breakdown": None,
        "data_wait_frac": None,
        "peak_memory_gib": None,
        "flops_per_step": None,
        "flops_method": FLOPS_METHOD,
        PROJECTED_KEY: None,
    }


def _bench_config(config: str, device: torch.device, batch_size: int, workers: int):
    from radgaze.training.config import load_config

    over = [f"batch_size={batch_size}", f'device="{device.type}"', f"num_workers={workers}"]
    if config == "paper":
        # random weights of the paper's shapes: a benchmark downloads nothing (the GPU host may be offline)
        over += [
            'model.text_encoder="random-bert"',
            "model.local_files_only=true",
            "model.image_pretrained=false",
        ]
        over += [f"model.text_encoder_kwargs.{k}={v}" for k, v in BIO_CLINICAL_BERT_SHAPE.items()]
    return load_config(config, over)


def _prepared_dataset(cfg, mcfg, n_side: int, work: Path, n_cases: int, image_px: int):
    """The training dataset of a prepared folder of ``n_cases`` synthetic cases."""
    from radgaze.capture.synth import write_synthetic_sessions
    from radgaze.training import prepared as tprep

    sessions = work / "sessions"
    write_synthetic_sessions(sessions, n_cases=n_cases, seed=0, image_size=image_px)
    variant = tprep.Variant(int(mcfg.image_size), n_side, cfg.data.max_sentences)
    tprep.prepare(sessions, None, [variant])
    folder = tprep.PreparedFolder(sessions / tprep.PREPARED_DIR, variant)
    return tprep.PreparedDataset(
        folder,
        sessions,
        folder.cases,
        cfg.data,
        image_size=int(mcfg.image_size),
        n_side=n_side,
        seed=cfg.seed,
        mean=mcfg.image_mean,
        std=mcfg.image_std,
    )


def _batches(n_items: int, batch_size: int, n_batches: int, seed: int) -> list[list[int]]:
    from radgaze.training.trainer import epoch_batches

    out: list[list[int]] = []
    epoch = 0
    while len(out) < n_batches:  # successive epochs' batches (the synthetic set is small)
        out += epoch_batches(n_items, batch_size, seed, epoch, 0, 1)
        epoch += 1
    return out[:n_batches]


def breakdown_summary(data_wait_s: list[float], host_s: list[float], compute_s: list[float]) -> dict:
    """Mean seconds per step of each part, their sum (the step) and fractions of it."""
    n = len(compute_s)
    if not n or len(data_wait_s) != n or len(host_s) != n:
        raise ValueError(f"expected equal, non-empty timings, got {len(data_wait_s)}, {len(host_s)}, {n}")
    parts = {"data_wait_s": sum(data_wait_s) / n, "host_s": sum(host_s) / n, "compute_s": sum(compute_s) / n}
    step_s = sum(parts.values())
    return {
        **parts,
        "step_s": step_s,
        "fractions": {k.removesuffix("_s"): v / step_s for k, v in parts.items()},
        "steps": n,
    }


def measure(
    *,
    config: str,
    device: torch.device,
    batch_size: int,
    steps: int,
    warmup: int,
    n_cases: int,
    work: Path,
    workers: int = 0,
    image_px: int = 512,
) -> dict:
    """Time ``steps`` optimiser steps after ``warmup`` ones, fed from a prepared synthetic dataset."""
    from torch.utils.flop_counter import FlopCounterMode

    from radgaze.training import data as tdata
    from radgaze.training.trainer import _amp, _loader, _loss_terms, build_model, param_groups

    cfg = _bench_config(config, device, batch_size, workers)
    torch.manual_seed(0)
    model, mcfg = build_model(cfg, work)
    ds = _prepared_dataset(cfg, mcfg, int(model.patch_grid), work, n_cases, image_px)
    bs = min(batch_size, len(ds))
    model.to(device).train()
    opt = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay, cfg.optim.lr), lr=cfg.optim.lr)
    amp_ctx, _, amp_mode = _amp(cfg, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def compute(mb: dict) -> None:
        with amp_ctx():
            loss, _ = _loss_terms(model(mb))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    it = iter(
        _loader(ds, _batches(len(ds), bs, warmup + 1 + steps, cfg.seed), 0, workers, device.type == "cuda")
    )
    for _ in range(warmup):
        compute(tdata.model_batch(model, next(it), device))
    with FlopCounterMode(display=False) as fc:
        compute(tdata.model_batch(model, next(it), device))
    flops = float(fc.get_total_flops())
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    br = breakdown_summary(*_timed_steps(it, model, device, compute, sync, steps))
    return _train_result(br, flops, device, config, amp_mode, bs, workers, steps)


def _timed_steps(it, model, device, compute, sync, steps: int) -> tuple[list, list, list]:
    """Per step: (data wait, host work: tokenise + copy, compute to the device's end) in seconds."""
    from radgaze.training import data as tdata

    waits, hosts, computes = [], [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        mb = tdata.model_batch(model, batch, device)
        t2 = time.perf_counter()
        compute(mb)
        sync()
        t3 = time.perf_counter()
        waits.append(t1 - t0)
        hosts.append(t2 - t1)
        computes.append(t3 - t2)
    return waits, hosts, computes


def _train_result(
    br: dict, flops: float, device, config: str, amp_mode, bs: int, workers: int, steps: int
) -> dict:
    """The ``bench train`` figures of one measured run (MFU against the device's peak bf16 rate)."""
    sps = bs / br["step_s"]
    peak = peak_flops(device)
    return {
        "measured": True,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "config": config,
        "amp": amp_mode,
        "batch_size": bs,
        "workers": workers,
        "fed_from": "prepared dataset through the trainer's DataLoader",
        "steps_timed": steps,
        "step_s": br["step_s"],
        "breakdown": br,
        "data_wait_frac": br["fractions"]["data_wait"],
        "samples_per_s": sps,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "flops_per_step": flops,
        "flops_method": FLOPS_METHOD,
        "achieved_tflops": flops / br["step_s"] / 1e12,
        "peak_bf16_tflops": None if peak is None else peak / 1e12,
        "mfu": None if peak is None else flops / br["step_s"] / peak,
        PROJECTED_KEY: PAPER_EPOCHS * PAPER_SAMPLES / sps,
        "goals": {"mfu": 0.35, PROJECTED_KEY: 120.0, "data_wait_frac": 0.05},
        "note": "per-step device synchronise for the breakdown (the trainer does not synchronise)"
        + ("; random BERT of Bio_ClinicalBERT's shape" if config == "paper" else ""),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="radgaze bench train",
        description="Training throughput of the paper config (Swin-T + a BERT of Bio_ClinicalBERT's shape, "
        "224 px, bf16, batch 64) fed from a prepared synthetic dataset: samples/s, MFU (counted FLOPs), "
        "data wait vs compute per step, peak memory, time for 50 epochs over 3,700 samples. Needs "
        "CUDA; without it prints nulls (not measured) unless --device cpu asks for a CPU smoke run.",
        epilog="example: radgaze bench train --json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", default="paper", help="preset or config file")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="cpu = smoke run only")
    p.add_argument("--batch-size", type=int, default=64, help="per-step batch")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--cases", type=int, default=128, help="synthetic cases generated and prepared")
    p.add_argument("--image-px", type=int, default=512, help="synthetic radiograph side (px)")
    p.add_argument("--workers", type=int, default=-1, help="DataLoader workers (-1 = one per CPU, up to 16)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.device == "cpu":
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        device = None
    if device is None:
        result = not_measured("no CUDA device on this machine: training throughput and MFU were not measured")
    else:
        with tempfile.TemporaryDirectory(prefix="radgaze-bench-") as tmp:
            result = measure(
                config=a.config,
                device=device,
                batch_size=a.batch_size,
                steps=a.steps,
                warmup=a.warmup,
                n_cases=a.cases,
                work=Path(tmp),
                workers=min(16, os.cpu_count() or 1) if a.workers < 0 else a.workers,
                image_px=a.image_px,
            )
    notes = {} if result["measured"] else {"mfu": result["reason"]}
    print_result(bench_result(result, GOALS, notes), a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
