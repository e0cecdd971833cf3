"""``radgaze bench train``: training throughput of the ``paper`` model on synthetic data, and its MFU.

Measures optimiser steps of the real trainer's step (AMP bf16, AdamW, grad clipping) on batches of synthetic
sessions already on the device, after warm-up steps; reports samples/s, model FLOPs utilisation (FLOPs of one
step counted by torch's FlopCounterMode / step time / the GPU's dense bf16 peak) and the implied time for 50
epochs over 3,700 samples (EGMA's MIMIC-EYE pretraining set size and epochs). The paper's text encoder
(Bio_ClinicalBERT) cannot be downloaded here, so a random BERT of the same shape (12 layers, hidden 768,
12 heads, FFN 3072) stands in: throughput depends on the shape, not the weights.

Without CUDA nothing is measured: the JSON carries nulls and says so.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from radgaze.capture.bench.report import bench_result, print_result

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


def not_measured(reason: str) -> dict:
    return {
        "measured": False,
        "reason": reason,
        "device": None,
        "samples_per_s": None,
        "mfu": None,
        "step_s": None,
        "flops_per_step": None,
        f"time_{PAPER_EPOCHS}_epochs_{PAPER_SAMPLES}_samples_s": None,
    }


def measure(
    *, config: str, device: torch.device, batch_size: int, steps: int, warmup: int, n_cases: int, work: Path
) -> dict:
    """Time ``steps`` optimiser steps after ``warmup`` ones on synthetic batches resident on ``device``."""
    from torch.utils.flop_counter import FlopCounterMode

    from radgaze.capture.synth import write_synthetic_sessions
    from radgaze.training import data as tdata
    from radgaze.training.config import load_config
    from radgaze.training.trainer import _amp, _loss_terms, build_model, param_groups, prepare_data

    over = [f"batch_size={batch_size}", f'device="{device.type}"']
    if config == "paper":
        over += [
            'model.text_encoder="random-bert"',
            "model.local_files_only=true",
            "model.image_pretrained=false",
        ]
        over += [f"model.text_encoder_kwargs.{k}={v}" for k, v in BIO_CLINICAL_BERT_SHAPE.items()]
    cfg = load_config(config, over)
    sessions = work / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    write_synthetic_sessions(sessions, n_cases=n_cases, seed=0)
    torch.manual_seed(0)
    model, mcfg = build_model(cfg, work)
    rd = prepare_data(cfg, sessions, mcfg=mcfg, n_side=int(model.patch_grid))
    model.to(device).train()
    idx = [i % len(rd.train) for i in range(batch_size)]
    batch = tdata.model_batch(model, tdata.collate([rd.train[i] for i in idx]), device)
    opt = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr)
    amp_ctx, scaler, amp_mode = _amp(cfg, device)

    def step() -> None:
        with amp_ctx():
            loss, _ = _loss_terms(model(batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as fc:
        step()
    flops = float(fc.get_total_flops())
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    step_s = (time.perf_counter() - t0) / steps
    sps = batch_size / step_s
    peak = peak_flops(device)
    return {
        "measured": True,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "config": config,
        "amp": amp_mode,
        "batch_size": batch_size,
        "steps_timed": steps,
        "step_s": step_s,
        "samples_per_s": sps,
        "flops_per_step": flops,
        "achieved_tflops": flops / step_s / 1e12,
        "peak_bf16_tflops": None if peak is None else peak / 1e12,
        "mfu": None if peak is None else flops / step_s / peak,
        f"time_{PAPER_EPOCHS}_epochs_{PAPER_SAMPLES}_samples_s": PAPER_EPOCHS * PAPER_SAMPLES / sps,
        "note": "excludes data loading (batches resident on the device)"
        + ("; random BERT of Bio_ClinicalBERT's shape" if config == "paper" else ""),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="radgaze bench train",
        description="Training throughput of the paper config (Swin-T + a BERT of Bio_ClinicalBERT's shape, "
        "224 px, bf16) on synthetic sessions: samples/s, MFU, time for 50 epochs over 3,700 samples. Needs "
        "CUDA; without it prints nulls (not measured) unless --device cpu asks for a CPU smoke run.",
        epilog="example: radgaze bench train --json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", default="paper", help="preset or config file")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="cpu = smoke run only")
    p.add_argument("--batch-size", type=int, default=40, help="per-step batch (paper reference code: 40)")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--cases", type=int, default=16, help="synthetic cases generated")
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
            )
    notes = {} if result["measured"] else {"mfu": result["reason"]}
    print_result(bench_result(result, GOALS, notes), a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
