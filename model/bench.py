"""``radgaze bench model``: loss parity (float64, every term, under the paper defaults and under
LossConfig.reference_code()) and speed-up of the vectorized losses over the loop references (CPU), and, when a CUDA GPU is present, train-step throughput and MFU of Swin-T + a 6-layer BERT at 224 px
in bf16 (issue 5, section 6). Without CUDA the GPU figures are null, never invented.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from radgaze.capture.base.report import bench_result, print_result
from radgaze.model import losses as vec
from radgaze.model import losses_loop as loop
from radgaze.model.config import LossConfig

# Goals (issue 5, section 6): vectorized losses >= 20x the loop references; >= 35 % MFU on the GPU train step.
GOALS = {"loss_speedup_vs_loop": (">=", 20.0), "mfu": (">=", 0.35)}
# Dense bf16 tensor-core peaks from the vendors' data sheets (FLOP/s, without sparsity).
PEAK_BF16_FLOPS = {
    "H200": 989.4e12,  # NVIDIA H200 SXM
    "H100 PCIe": 756.0e12,  # NVIDIA H100 PCIe
    "H100": 989.4e12,  # NVIDIA H100 SXM
    "A100": 312.0e12,  # NVIDIA A100
    "L40S": 362.05e12,  # NVIDIA L40S
    "RTX 4090": 165.2e12,  # GeForce RTX 4090 (fp32 accumulate)
    "RTX 3090": 71.0e12,  # GeForce RTX 3090 (fp32 accumulate)
}


def synthetic_features(b: int, n: int, m_max: int, d: int, seed: int, dtype: torch.dtype) -> dict[str, Any]:
    """Random normalised features, reports of 1..m_max sentences, gaze on about half of the samples."""
    g = torch.Generator().manual_seed(seed)
    n_sent = torch.randint(1, m_max + 1, (b,), generator=g)
    n_sent[0] = m_max
    mask = torch.arange(m_max)[None] < n_sent[:, None]
    patches = F.normalize(torch.randn(b, n, d, generator=g, dtype=dtype), dim=-1)
    sentences = F.normalize(torch.randn(b, m_max, d, generator=g, dtype=dtype), dim=-1) * mask[..., None]
    gaze = torch.rand(b, m_max, n, generator=g, dtype=dtype) * (torch.rand(b, m_max, n, generator=g) < 0.3)
    gaze = gaze * mask[..., None]
    gaze = gaze / gaze.sum(-1, keepdim=True).clamp_min(1e-12)
    has_gaze = torch.rand(b, generator=g) < 0.5
    image = F.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=-1)
    text = F.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=-1)
    return dict(
        patches=patches, sentences=sentences, mask=mask, gaze=gaze, has_gaze=has_gaze, image=image, text=text
    )


def vectorized_terms(
    f: dict[str, Any], scale: float, cfg: LossConfig, with_egf: bool = False
) -> dict[str, torch.Tensor]:
    s = torch.tensor(scale, dtype=f["patches"].dtype)
    args = (f["patches"], f["sentences"], f["mask"], f["gaze"], f["has_gaze"], s, cfg)
    terms = {
        "clip": vec.clip_loss(f["image"], f["text"], s)["clip_loss"],
        "filip": vec.filip_loss(f["patches"], f["sentences"], f["mask"], s, cfg)["filip_loss"],
        "mlce": vec.mlce_loss(*args)["mlce_loss"],
        "egm": vec.egm_loss(*args)["egm_loss"],
    }
    if with_egf:  # Eq. 5 as assembled (the reference's training total); left out of the timing
        terms["egf"] = vec.egf_loss(*args)["egf_loss"]
    return terms


def loop_terms(f: dict[str, Any], scale: float, cfg: LossConfig) -> dict[str, torch.Tensor]:
    args = (f["patches"], f["sentences"], f["mask"], f["gaze"], f["has_gaze"], scale, cfg)
    terms = {
        "clip": loop.clip_loop(f["image"], f["text"], scale),
        "filip": loop.filip_loop(f["patches"], f["sentences"], f["mask"], scale, cfg),
        "mlce": loop.mlce_loop(*args),
        "egm": loop.egm_loop(*args),
    }
    terms["egf"] = terms["filip"] + terms["mlce"]
    return terms


def parity(f64: dict[str, Any], scale: float) -> dict[str, dict[str, float]]:
    """|vectorized - loop| in float64 for every term, under the paper defaults and under
    LossConfig.reference_code() (the loops are written from each definition separately, see losses_loop)."""
    out = {}
    for name, cfg in (("paper", LossConfig()), ("reference_code", LossConfig.reference_code())):
        v, r = vectorized_terms(f64, scale, cfg, with_egf=True), loop_terms(f64, scale, cfg)
        out[name] = {k: abs(float(v[k]) - float(r[k])) for k in v}
    return out


def loss_bench(b: int, n: int, m_max: int, d: int, repeats: int, seed: int) -> dict[str, Any]:
    """Parity (float64, paper and reference_code() definitions) and forward time of the four loss terms,
    vectorized vs loops (float32), on CPU."""
    cfg, scale = LossConfig(), 1.0 / 0.07
    f64 = synthetic_features(b, n, m_max, d, seed, torch.float64)
    by_term = parity(f64, scale)
    err = max(e for terms in by_term.values() for e in terms.values())
    v = vectorized_terms(f64, scale, cfg, with_egf=True)
    f32 = synthetic_features(b, n, m_max, d, seed, torch.float32)
    with torch.no_grad():
        vectorized_terms(f32, scale, cfg)  # warm-up
        t_vec = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            vectorized_terms(f32, scale, cfg)
            t_vec.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop_terms(f32, scale, cfg)
        t_loop = time.perf_counter() - t0
    vec_s = statistics.median(t_vec)
    return {
        "loss_parity_max_abs_err": err,
        "loss_parity_float64": by_term,
        "loss_speedup_vs_loop": t_loop / vec_s,
        "loss_vectorized_ms": 1e3 * vec_s,
        "loss_loop_ms": 1e3 * t_loop,
        "loss_terms_float64": {k: float(x) for k, x in v.items()},
    }


def peak_flops(device_name: str) -> float | None:
    """bf16 dense peak of a known GPU by name, else None."""
    for key, value in PEAK_BF16_FLOPS.items():
        if key in device_name:
            return value
    return None


def train_step_bench(
    device: str, preset: str, batch: int, steps: int, sentences: int, tokens: int, amp: bool
) -> dict[str, Any]:
    """Train-step throughput (samples/s) and FLOPs of one step (forward + backward, torch's
    FlopCounterMode) for ModelConfig.preset(preset) on ``device``: AdamW, all EGMA losses, bf16 autocast
    when ``amp``. On CUDA this is the issue's Swin-T 224 px + 6-layer BERT, batch 64."""
    from torch.utils.flop_counter import FlopCounterMode

    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    dev = torch.device(device)
    model = EGMAModel(ModelConfig.preset(preset)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    vocab = model.text_encoder.bert.config.vocab_size
    n, size = model.patch_grid**2, model.config.image_size
    ids = torch.randint(5, vocab, (batch, sentences, tokens), generator=g)
    ids[..., 0], ids[..., -1] = model.tokenizer.cls_token_id, model.tokenizer.sep_token_id
    gaze = torch.rand(batch, sentences, n, generator=g)
    data = {
        "image": torch.randn(batch, 3, size, size, generator=g),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "sentence_mask": torch.ones(batch, sentences, dtype=torch.bool),
        "gaze": gaze / gaze.sum(-1, keepdim=True),
        "has_gaze": torch.ones(batch, dtype=torch.bool),
    }
    data = {k: v.to(dev) for k, v in data.items()}

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out = model(data)
        loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(3):
        step()
    sync()
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = float(counter.get_total_flops())
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / steps
    return {"train_step_samples_per_s": batch / dt, "train_step_flops": flops, "train_step_s": dt}


def gpu_bench(
    batch: int, steps: int, sentences: int, tokens: int, peak_tflops: float | None
) -> dict[str, Any]:
    """train_step_bench on CUDA with the "bench" preset in bf16, plus MFU = achieved FLOP/s / bf16 peak."""
    res = train_step_bench("cuda", "bench", batch, steps, sentences, tokens, amp=True)
    name = torch.cuda.get_device_name(0)
    peak = peak_tflops * 1e12 if peak_tflops else peak_flops(name)
    res["mfu"] = res["train_step_flops"] / res["train_step_s"] / peak if peak else None
    res.update(gpu=name, gpu_batch=batch)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="radgaze bench model",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="example: radgaze bench model --json",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--batch", type=int, default=32, help="CPU loss benchmark batch")
    p.add_argument("--patches", type=int, default=49, help="patches per image (7x7 = Swin-T at 224)")
    p.add_argument("--max-sentences", type=int, default=12, help="sentences per report: 1..this")
    p.add_argument("--dim", type=int, default=512, help="embedding width")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats of the vectorized losses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu-batch", type=int, default=64, help="GPU train-step batch")
    p.add_argument("--gpu-steps", type=int, default=20, help="timed GPU steps")
    p.add_argument("--gpu-sentences", type=int, default=8, help="sentences per report on the GPU")
    p.add_argument("--gpu-tokens", type=int, default=24, help="tokens per sentence on the GPU")
    p.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak for MFU (default: by GPU name)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    a = p.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    res: dict[str, Any] = {"batch": a.batch, "patches": a.patches, "max_sentences": a.max_sentences}
    res["cpu_threads"] = torch.get_num_threads()
    res.update(loss_bench(a.batch, a.patches, a.max_sentences, a.dim, a.repeats, a.seed))
    res.update({"train_step_samples_per_s": None, "mfu": None, "gpu": None})
    if torch.cuda.is_available():
        res.update(gpu_bench(a.gpu_batch, a.gpu_steps, a.gpu_sentences, a.gpu_tokens, a.peak_tflops))
    notes = {} if res["gpu"] else {"mfu": "no CUDA device: the GPU train-step figures were not measured"}
    print_result(bench_result(res, GOALS, notes), a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
