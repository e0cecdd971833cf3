"""EGMA pretraining loop: AdamW, cosine schedule with warm-up, AMP, clipping, accumulation, exact resume.

Run directory layout (``RUN``)::

    config.json              the TrainConfig, as run
    metrics.jsonl            one line per logged optimiser step: step, epoch, each loss term, loss, lr,
                             samples_per_s
    epochs.jsonl             one line per finished epoch: step, epoch, mean of each loss term, select_metric
    checkpoints/last/        radgaze.model.checkpoint directory (safetensors + config + tokenizer), replaced
                             atomically
    checkpoints/best/        same, for the best epoch (validation loss, else mean training loss)
    checkpoints/state.pt     everything needed to continue exactly (weights, optimiser, scheduler, scaler,
                             RNG states, epoch and position in it), written to a temp file then os.replace'd
    report.json              data report (files, cases, skipped damaged files, gaze cases), timings, results
    eval.json                final evaluation (when labels allow it)

Resume continues exactly: the sampler order of an epoch and every augmentation are functions of
(seed, epoch, index) alone, and the global RNG states are restored, so on a CPU an interrupted-and-resumed run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from radgaze.capture.base.errors import CheckpointError, ConfigError
from radgaze.training import data as tdata
from radgaze.training.config import TrainConfig, save_config
from radgaze.training.dist import DistContext, all_reduce_mean, barrier, init_distributed, shutdown

log = logging.getLogger(__name__)

STATE_NAME = "state.pt"
STATE_VERSION = 1
# Validation split when the config leaves data.val_fraction unset: a fifth of the cases once there are 20 (so
# at least 4 held out and 16 to train on); fewer cases all train. radgaze's choice.
AUTO_VAL_FRACTION, AUTO_VAL_MIN_CASES = 0.2, 20


# --------------------------------------------------------------------------------------------- schedule
def lr_multiplier(step: int, total_steps: int, warmup_steps: int, min_frac: float = 0.0) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from 1 down to ``min_frac`` at ``total_steps``.

    ``step`` counts optimiser steps already taken (the multiplier for the next update is lr_multiplier(step)).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_frac + (1.0 - min_frac) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float, lr: float | None = None) -> list[dict]:
    """Weight decay on matrices only; none on biases, norms and the temperature (CLIP/open_clip practice).

    With ``lr``, parameters under a prefix of ``model.param_lr_scales()`` get their own groups at lr x scale
    (eCLIP's heatmap processor at twice the base rate, as its reference); the scheduler scales every group.
    """
    scales: dict[str, float] = getattr(model, "param_lr_scales", dict)() if lr is not None else {}
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((v for k, v in scales.items() if name.startswith(k)), 1.0)
            groups.setdefault((scale, p.ndim >= 2), []).append(p)
    out = []
    for scale, decay in sorted(groups, key=lambda k: (k[0], not k[1])):
        group = {"params": groups[scale, decay], "weight_decay": weight_decay if decay else 0.0}
        if scale != 1.0:
            group["lr"] = lr * scale  # type: ignore[operator]
        out.append(group)
    return out


# --------------------------------------------------------------------------------------------- seeding
# The legacy global numpy RNG is seeded and saved too (NPY002 waived): third-party code (timm, transformers,
# augmentations) may draw from it, and an exact resume must restore every RNG that training touches.
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def rng_state() -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def epoch_batches(
    n_items: int, batch_size: int, seed: int, epoch: int, rank: int, world: int
) -> list[list[int]]:
    """This rank's micro-batches of one epoch: a seeded permutation cut into rank-interleaved full batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_items, generator=g).tolist()
    n_batches = n_items // (batch_size * world)
    return [
        perm[(j * world + rank) * batch_size : (j * world + rank + 1) * batch_size] for j in range(n_batches)
    ]


# -------------------------------------------------------------------------------------------- progress
class Progress:
    """A tqdm bar for people (stderr) and/or JSON lines for programs: {"step","total","loss","eta_s"}."""

    def __init__(self, total: int, start: int, *, json_target: str | None, bar: bool) -> None:
        self.total, self.start = total, start
        self.t0 = time.perf_counter()
        self._own = False
        self._json: IO[str] | None = None
        if json_target == "-":
            self._json = sys.stdout
        elif json_target:
            self._json = open(json_target, "a", buffering=1)  # noqa: SIM115  (closed in close())
            self._own = True
        self._bar = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)

    def update(self, step: int, loss: float, epoch: int) -> None:
        done = step - self.start
        rate = done / max(1e-9, time.perf_counter() - self.t0)
        eta = (self.total - step) / rate if rate > 0 else None
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch)
        self.emit(
            {"step": step, "total": self.total, "loss": loss, "eta_s": None if eta is None else round(eta, 2)}
        )

    def emit(self, obj: dict) -> None:
        if self._json is not None:
            self._json.write(json.dumps(obj) + "\n")
            self._json.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._own and self._json is not None:
            self._json.close()
        self._json = None


# --------------------------------------------------------------------------------------- checkpointing
def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _save_model(model: torch.nn.Module, directory: Path, metrics: dict) -> None:
    from radgaze.model.checkpoint import save_checkpoint

    save_checkpoint(model, directory, metrics=metrics)


@dataclass
class LoopState:
    """Where the loop stands; saved with the weights so a resumed run continues exactly."""

    epoch: int = 0  # epoch to run next / being run
    micro: int = 0  # micro-batches of ``epoch`` already consumed (always at an optimiser-step boundary)
    step: int = 0  # optimiser steps taken
    best_metric: float = math.inf
    best_epoch: int = -1
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of loss terms this epoch
    epoch_count: int = 0  # micro-batches summed in epoch_sums
    samples_seen: int = 0


def _state_dict(model, opt, sched, scaler, loop: LoopState, cfg: TrainConfig) -> dict:
    return {
        "version": STATE_VERSION,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "loop": vars(loop).copy(),
        "rng": rng_state(),
        "config": cfg.to_dict(),
    }


def load_state(run_dir: Path) -> dict:
    path = Path(run_dir) / "checkpoints" / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} does not exist (no checkpoint was saved in {run_dir})")
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a torn or foreign file: say so plainly
        raise CheckpointError(f"cannot resume: {path} is not a readable training state ({exc})") from exc
    if st.get("version") != STATE_VERSION:
        raise CheckpointError(
            f"cannot resume: {path} has state version {st.get('version')}, expected {STATE_VERSION}"
        )
    return st


# ------------------------------------------------------------------------------------------- the model
def build_model(cfg: TrainConfig, run_dir: Path, *, initialise: bool = True):
    """The EGMAModel of the config (random ``tiny-bert`` text encoders are built locally by the model).

    With ``cfg.init`` and ``initialise`` the weights then come from that checkpoint
    (radgaze.model.init_weights); what loaded, stayed or had no place is logged and written to
    ``run_dir/init.json``."""
    from radgaze.model.egma import EGMAModel

    mcfg = cfg.model_config()
    log.info("building the model (image encoder %s) …", mcfg.image_encoder)
    model = EGMAModel(mcfg)
    if cfg.init and initialise:
        from radgaze.model.init_weights import init_from

        report = init_from(model, cfg.init, cfg.init_layout)
        for line in report.lines():
            log.info("%s", line)
        if os.environ.get("RANK", "0") == "0":
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "init.json").write_text(json.dumps(report.to_dict(), indent=1))
    return model, mcfg


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _amp(cfg: TrainConfig, device: torch.device) -> tuple[Any, torch.amp.GradScaler | None, str]:
    mode = cfg.amp
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "off"
    if mode == "off":
        return nullcontext, None, mode
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None

    def ctx():
        return torch.autocast(device_type=device.type, dtype=dtype)

    return ctx, scaler, mode


def _loss_terms(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    terms = {k: v for k, v in out.items() if k.endswith("_loss")}
    if not terms:
        raise RuntimeError(f"the model returned no *_loss terms (keys: {sorted(out)})")
    return sum(terms.values()), terms


# ------------------------------------------------------------------------------------------------ data
@dataclass
class RunData:
    index: tdata.SessionIndex
    train: tdata.SessionDataset
    val: tdata.SessionDataset | None
    gaze_keys: set[str]
    prepared: str | None = None  # the prepared dataset the items come from (None: decoded from sessions)
    sessions_present: bool = True  # False for a prepared folder copied without its sessions (no final eval)


def _index_run_cases(cfg: TrainConfig, sessions: Path, *, mcfg, n_side: int, ctx: DistContext | None):
    """(index, prepared folder or None, the sessions folder items read from, whether the sessions are there).

    When ``sessions`` is a prepared dataset, or holds one in ``.radgaze-prepared``
    (:mod:`radgaze.training.prepared`), rank 0 first refreshes it for the session files that changed (when
    the sessions are there) and adds this run's variant; the others wait."""
    from radgaze.training import prepared as tprep

    sessions = Path(sessions)
    prepared_dir = tprep.find_prepared(sessions)
    if prepared_dir is None:
        log.info("indexing the sessions in %s …", sessions)
        return tdata.build_index(sessions), None, sessions, True
    variant = tprep.Variant(int(mcfg.image_size), n_side, cfg.data.max_sentences)
    src = tprep.source_folder(prepared_dir, tprep.read_manifest(prepared_dir))
    if src is not None and (ctx is None or ctx.is_main):
        rep = tprep.prepare(src, prepared_dir, [variant])
        if rep.refreshed_files:
            log.info("prepared dataset %s: %d session file(s) refreshed", prepared_dir, rep.refreshed_files)
    if ctx is not None:
        barrier(ctx)
    folder = tprep.PreparedFolder(prepared_dir, variant)
    sessions = src if src is not None else prepared_dir
    return folder.index(sessions), folder, sessions, src is not None


def _split_run_cases(cfg: TrainConfig, index, sessions: Path) -> tuple[list[str], list[str]]:
    """(training keys, validation keys) of the usable cases; ConfigError when there are none."""
    if not index.cases:
        raise ConfigError(
            f"no usable cases under {sessions}: {index.n_files} session file(s), {len(index.skipped)} skipped"
        )
    keys = [c.key for c in index.cases]
    train_keys, val_keys = tdata.split_cases(
        keys, auto_val_fraction(cfg.data.val_fraction, len(keys)), cfg.seed
    )
    log.info(
        "%d usable case(s) in %d file(s), %d skipped: %d for training, %d held out for validation",
        len(keys),
        index.n_files,
        len(index.skipped),
        len(train_keys),
        len(val_keys),
    )
    return train_keys, val_keys


def prepare_data(
    cfg: TrainConfig,
    sessions: Path,
    *,
    mcfg,
    n_side: int,
    cache: dict | None = None,
    ctx: DistContext | None = None,
) -> RunData:
    """Index, split and gaze selection of the run's cases, as datasets (from the prepared form when there is
    one, see :func:`_index_run_cases`)."""
    from radgaze.training import prepared as tprep

    index, folder, sessions, sessions_present = _index_run_cases(
        cfg, sessions, mcfg=mcfg, n_side=n_side, ctx=ctx
    )
    train_keys, val_keys = _split_run_cases(cfg, index, sessions)
    gaze_keys = tdata.select_gaze_cases(train_keys, cfg.data.gaze_ratio, cfg.seed)
    by_key = {c.key: c for c in index.cases}
    common = dict(
        image_size=int(mcfg.image_size),
        n_side=n_side,
        seed=cfg.seed,
        mean=mcfg.image_mean,
        std=mcfg.image_std,
        cache=cache,
    )

    def dataset(keys: list[str], gaze: set[str], train: bool) -> tdata.SessionDataset:
        cases = [by_key[k] for k in keys]
        if folder is not None:
            return tprep.PreparedDataset(
                folder, sessions, cases, cfg.data, gaze_keys=gaze, train=train, **common
            )
        return tdata.SessionDataset(sessions, cases, cfg.data, gaze_keys=gaze, train=train, **common)

    train = dataset(train_keys, gaze_keys, True)
    val = dataset(val_keys, set(val_keys), False) if val_keys else None
    return RunData(
        index,
        train,
        val,
        gaze_keys,
        prepared=None if folder is None else str(folder.out),
        sessions_present=sessions_present,
    )


class _EpochBatches(torch.utils.data.Sampler):
    """Yields lists of (epoch, index) pairs so worker processes need no shared epoch state."""

    def __init__(self, batches: list[list[int]], epoch: int) -> None:
        self.batches, self.epoch = batches, epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for b in self.batches:
            yield [(self.epoch, i) for i in b]

    def __len__(self) -> int:
        return len(self.batches)


def _loader(
    ds: tdata.SessionDataset, batches: list[list[int]], epoch: int, workers: int, pin_memory: bool = False
):
    """The epoch's batches, loaded in ``workers`` processes (0 = in this one), pinned for a CUDA copy.

    Items are functions of (seed, epoch, index) alone, so which worker builds a batch changes nothing and a
    resumed epoch (its remaining ``batches``) yields exactly the batches the uninterrupted one would have.
    """
    # A DataLoader draws its workers' base seed from the global RNG unless given a generator; that draw would
    # make a resumed run's dropout masks differ from the uninterrupted run's, so it gets its own.
    return torch.utils.data.DataLoader(
        ds,
        batch_sampler=_EpochBatches(batches, epoch),
        collate_fn=tdata.collate,
        num_workers=workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(epoch),
    )


@torch.no_grad()
def validation_loss(model, ds: tdata.SessionDataset, cfg: TrainConfig, device, amp_ctx) -> float:
    """Mean total loss over the validation cases (fixed order, no augmentation)."""
    model.eval()
    n = len(ds)
    b = max(2, min(cfg.batch_size, n))
    total, count = 0.0, 0
    for start in range(0, n - 1, b):
        idx = list(range(start, min(n, start + b)))
        if len(idx) < 2:
            break
        batch = tdata.collate([ds[i] for i in idx])
        with amp_ctx():
            loss, _ = _loss_terms(_unwrap(model)(tdata.model_batch(_unwrap(model), batch, device)))
        total += float(loss) * len(idx)
        count += len(idx)
    model.train()
    return total / max(1, count)


# ------------------------------------------------------------------------------------------------ train
def train(
    cfg: TrainConfig,
    sessions: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress_json: str | None = None,
    show_bar: bool | None = None,
    stop_after_steps: int | None = None,
    sample_cache: dict | None = None,
) -> dict:
    """Train on every usable case under ``sessions``; write the run into ``out_dir``; return the run report.

    ``stop_after_steps`` saves a resumable state and returns after that many optimiser steps (an interruption
    on purpose; tests and the app's pause use it). ``sample_cache`` shares decoded cases between runs
    (experiments). Launch under ``torchrun`` for DDP.
    """
    sessions, out = Path(sessions), Path(out_dir)
    ctx = init_distributed(cfg.device)
    try:
        return _train(
            cfg, sessions, out, ctx, resume, progress_json, show_bar, stop_after_steps, sample_cache
        )
    finally:
        shutdown(ctx)


def _train(
    cfg, sessions, out, ctx: DistContext, resume, progress_json, show_bar, stop_after_steps, sample_cache
):
    """open_clip's ``main`` in small steps: resolve the run, build model and data, plan the steps, build the
    optimiser, restore a saved state, run the epochs, write the report."""
    t_start = time.perf_counter()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    cfg, state = _resolve_resume(cfg, out, resume)
    _init_run_dir(cfg, out, ctx)
    seed_everything(cfg.seed)
    model, mcfg = build_model(cfg, out, initialise=state is None)
    rd = prepare_data(cfg, sessions, mcfg=mcfg, n_side=int(model.patch_grid), cache=sample_cache, ctx=ctx)
    plan = plan_steps(len(rd.train), cfg, ctx.world_size)
    model.to(ctx.device)
    run = _build_run(cfg, ctx, out, model, rd, plan)
    if state is not None:
        _restore_state(run, state)
    run.ddp_model = _wrap_ddp(model, ctx)
    model.train()
    bar = sys.stderr.isatty() if show_bar is None else show_bar
    run.progress = Progress(
        plan.total_steps,
        run.loop.step,
        json_target=progress_json if ctx.is_main else None,
        bar=bar and ctx.is_main,
    )
    stopped = _run_epochs(run, stop_after_steps)
    report = _run_report(run, sessions, stopped, time.perf_counter() - t_start)
    _finish(run, report)
    return report


# ------------------------------------------------------------------------------------- steps of _train
def _resolve_resume(cfg: TrainConfig, out: Path, resume: bool) -> tuple[TrainConfig, dict | None]:
    """(the config to run, the saved state or None): a resumed run keeps the config it started with."""
    if not resume:
        return cfg, None
    state = load_state(out)
    saved = TrainConfig.from_dict(state["config"])
    if saved.to_dict() != cfg.to_dict():
        log.warning("resuming %s with the configuration it was started with (given one ignored)", out)
    return saved, state


def _init_run_dir(cfg: TrainConfig, out: Path, ctx: DistContext) -> None:
    if ctx.is_main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.json")
    barrier(ctx)


@dataclass(frozen=True)
class StepPlan:
    """How an epoch is cut: per-process batch, micro-batches and optimiser steps."""

    batch_size: int  # per process
    micro_per_epoch: int  # micro-batches per epoch per process (a multiple of accum_steps)
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    samples_per_step: int  # over all processes and accumulated micro-batches


def plan_steps(n_train: int, cfg: TrainConfig, world_size: int) -> StepPlan:
    """The step plan; lowers the batch when there are too few cases, raises ConfigError when none fits."""
    batch_size = cfg.batch_size
    if n_train < batch_size * world_size:
        batch_size = n_train // world_size
        if batch_size < 2:
            raise ConfigError(
                f"{n_train} training case(s) for {world_size} process(es): a contrastive batch needs "
                "at least 2 cases per process"
            )
        log.warning("only %d training cases: batch size lowered to %d", n_train, batch_size)
    accum = cfg.optim.accum_steps
    micro_per_epoch = (n_train // (batch_size * world_size)) // accum * accum
    if micro_per_epoch == 0:
        raise ConfigError(
            f"accum_steps={accum} needs {accum * batch_size * world_size} cases per epoch, got {n_train}"
        )
    steps_per_epoch = micro_per_epoch // accum
    total_steps = cfg.epochs * steps_per_epoch
    return StepPlan(
        batch_size=batch_size,
        micro_per_epoch=micro_per_epoch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        warmup_steps=int(round(cfg.optim.warmup_frac * total_steps)),
        samples_per_step=batch_size * world_size * accum,
    )


@dataclass
class _Run:
    """Everything the epoch loop touches, built once by :func:`_build_run`."""

    cfg: TrainConfig
    ctx: DistContext
    out: Path
    model: torch.nn.Module
    rd: RunData
    plan: StepPlan
    opt: torch.optim.Optimizer
    sched: Any
    amp_ctx: Any
    scaler: Any
    amp_mode: str
    loop: LoopState = field(default_factory=LoopState)
    ddp_model: torch.nn.Module | None = None
    progress: Progress | None = None
    last_terms: dict[str, float] = field(default_factory=dict)  # last step's terms, averaged over ranks
    pending_terms: dict[str, torch.Tensor] = field(default_factory=dict)  # last micro-batch's, this rank
    lr: float = 0.0  # learning rate of the last optimiser step
    t_log: float = field(default_factory=time.perf_counter)
    steps_since_log: int = 0

    def save(self, kind: str) -> None:
        """checkpoints/{kind} (rank 0 only); ``last`` also writes the resumable state."""
        if not self.ctx.is_main:
            return
        loop = self.loop
        metrics = {"step": loop.step, "epoch": loop.epoch, "best_metric": loop.best_metric}
        _save_model(self.model, self.out / "checkpoints" / kind, metrics)
        if kind == "last":
            st = _state_dict(self.model, self.opt, self.sched, self.scaler, loop, self.cfg)
            _atomic_torch_save(st, self.out / "checkpoints" / STATE_NAME)


def _build_run(cfg: TrainConfig, ctx: DistContext, out: Path, model, rd: RunData, plan: StepPlan) -> _Run:
    """AdamW over the decay/no-decay groups, the warm-up + cosine schedule and the AMP context."""
    opt = torch.optim.AdamW(
        param_groups(model, cfg.optim.weight_decay, cfg.optim.lr),
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        eps=cfg.optim.eps,
    )
    total, warmup = plan.total_steps, plan.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_multiplier(s, total, warmup, cfg.optim.min_lr_frac)
    )
    amp_ctx, scaler, amp_mode = _amp(cfg, ctx.device)
    return _Run(cfg, ctx, out, model, rd, plan, opt, sched, amp_ctx, scaler, amp_mode)


def _restore_state(run: _Run, state: dict) -> None:
    """Weights, optimiser, schedule, scaler, loop position and RNG states of a saved run."""
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    if run.scaler is not None and state["scaler"] is not None:
        run.scaler.load_state_dict(state["scaler"])
    run.loop = LoopState(**state["loop"])
    if run.ctx.is_main:
        _truncate_metrics(run.out / "metrics.jsonl", run.loop.step)
        _truncate_metrics(run.out / "epochs.jsonl", run.loop.step)
        set_rng_state(state["rng"])
    else:  # only rank 0's RNG state is saved; other ranks get a distinct, reproducible seed
        torch.manual_seed(run.cfg.seed + 7919 * run.ctx.rank + run.loop.step)


def _wrap_ddp(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    if not ctx.distributed:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model,
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        find_unused_parameters=True,
    )


def _run_epochs(run: _Run, stop_after_steps: int | None) -> bool:
    """Epochs until the config's count (or the requested stop); True when stopped on purpose."""
    metrics_fh = open(run.out / "metrics.jsonl", "a", buffering=1) if run.ctx.is_main else None  # noqa: SIM115
    run.t_log, run.steps_since_log = time.perf_counter(), 0
    try:
        while run.loop.epoch < run.cfg.epochs:
            if train_one_epoch(run, metrics_fh, stop_after_steps):
                run.save("last")
                return True
            end_epoch(run)
    except BaseException:
        run.progress.close()
        raise
    finally:
        if metrics_fh is not None:
            metrics_fh.close()
    return False


def train_one_epoch(run: _Run, metrics_fh: IO[str] | None, stop_after_steps: int | None) -> bool:
    """The rest of the current epoch (from ``loop.micro``); True when ``stop_after_steps`` was reached."""
    loop, plan, ctx, cfg = run.loop, run.plan, run.ctx, run.cfg
    batches = epoch_batches(
        len(run.rd.train), plan.batch_size, cfg.seed, loop.epoch, ctx.rank, ctx.world_size
    )
    batches = batches[loop.micro : plan.micro_per_epoch]
    pin = ctx.device.type == "cuda"
    for batch in _loader(run.rd.train, batches, loop.epoch, cfg.num_workers, pin):
        boundary = _forward_backward(run, batch)
        if not boundary:
            continue
        _optimizer_step(run)
        _log_step(run, metrics_fh)
        if stop_after_steps is not None and loop.step >= stop_after_steps:
            return True
        if (
            cfg.save_every_steps
            and loop.step % cfg.save_every_steps == 0
            and loop.micro < plan.micro_per_epoch
        ):
            run.save("last")
    return False


def _forward_backward(run: _Run, batch: dict) -> bool:
    """One micro-batch: loss terms, scaled backward (no DDP sync inside an accumulation), running sums.
    Returns True at an optimiser-step boundary."""
    loop, cfg, ctx = run.loop, run.cfg, run.ctx
    mb = tdata.model_batch(run.model, batch, ctx.device)
    mb["step"], mb["total_steps"] = loop.step, run.plan.total_steps
    boundary = (loop.micro + 1) % cfg.optim.accum_steps == 0
    sync = run.ddp_model.no_sync if (ctx.distributed and not boundary) else nullcontext
    with sync():
        with run.amp_ctx():
            loss, terms = _loss_terms(run.ddp_model(mb))
        scaled = loss / cfg.optim.accum_steps
        (run.scaler.scale(scaled) if run.scaler is not None else scaled).backward()
    for k, v in terms.items():
        loop.epoch_sums[k] = loop.epoch_sums.get(k, 0.0) + float(v.detach())
    loop.epoch_sums["loss"] = loop.epoch_sums.get("loss", 0.0) + float(loss.detach())
    loop.epoch_count += 1
    loop.micro += 1
    run.pending_terms = terms
    return boundary


def _optimizer_step(run: _Run) -> None:
    """Unscale, clip, step, zero, advance the schedule; the last micro-batch's terms averaged over ranks."""
    opt, scaler, cfg = run.opt, run.scaler, run.cfg
    if scaler is not None:
        scaler.unscale_(opt)
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    run.lr = run.sched.get_last_lr()[0]
    run.sched.step()
    run.loop.step += 1
    run.loop.samples_seen += run.plan.samples_per_step
    run.steps_since_log += 1
    terms = run.pending_terms
    run.last_terms = {k: float(all_reduce_mean(v.detach().float(), run.ctx)) for k, v in terms.items()}
    run.last_terms["loss"] = float(sum(run.last_terms.values()))


def _log_step(run: _Run, metrics_fh: IO[str] | None) -> None:
    """Progress for every step; a metrics.jsonl line every ``log_every_steps`` (and at the last step)."""
    loop = run.loop
    run.progress.update(loop.step, run.last_terms["loss"], loop.epoch)
    if metrics_fh is None:
        return
    if loop.step % run.cfg.log_every_steps != 0 and loop.step != run.plan.total_steps:
        return
    now = time.perf_counter()
    line = {"step": loop.step, "epoch": loop.epoch, **run.last_terms, "lr": run.lr}
    line["samples_per_s"] = round(
        run.steps_since_log * run.plan.samples_per_step / max(1e-9, now - run.t_log), 3
    )
    metrics_fh.write(json.dumps(line) + "\n")
    run.t_log, run.steps_since_log = now, 0


def end_epoch(run: _Run) -> None:
    """Select metric (validation loss, else the mean training loss), epochs.jsonl, last/best checkpoints."""
    loop, ctx = run.loop, run.ctx
    epoch_mean = {k: v / max(1, loop.epoch_count) for k, v in loop.epoch_sums.items()}
    metric = epoch_mean.get("loss", math.inf)
    if run.rd.val is not None:
        metric = validation_loss(run.model, run.rd.val, run.cfg, ctx.device, run.amp_ctx)
    metric = float(all_reduce_mean(torch.tensor(metric, dtype=torch.float64), ctx))
    loop.epoch += 1
    loop.micro = 0
    loop.epoch_sums, loop.epoch_count = {}, 0
    improved = metric < loop.best_metric
    if improved:
        loop.best_metric, loop.best_epoch = metric, loop.epoch - 1
    if ctx.is_main:
        line = {"step": loop.step, "epoch": loop.epoch - 1, **epoch_mean, "select_metric": metric}
        with open(run.out / "epochs.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
    run.save("last")
    if improved:
        run.save("best")
    barrier(ctx)


def _run_report(run: _Run, sessions: Path, stopped: bool, wall_s: float) -> dict:
    loop, cfg, rd = run.loop, run.cfg, run.rd
    return {
        "run": str(run.out),
        "sessions": str(sessions),
        "finished": not stopped and loop.epoch >= cfg.epochs,
        "steps": loop.step,
        "total_steps": run.plan.total_steps,
        "epochs": loop.epoch,
        "batch_size": run.plan.batch_size,
        "world_size": run.ctx.world_size,
        "device": str(run.ctx.device),
        "amp": run.amp_mode,
        "data": {
            **tdata.index_summary(rd.index, rd.gaze_keys),
            "n_train": len(rd.train),
            "n_val": 0 if rd.val is None else len(rd.val),
            "gaze_ratio": cfg.data.gaze_ratio,
            "prepared": rd.prepared,
        },
        "final_terms": run.last_terms,
        "best_metric": loop.best_metric if math.isfinite(loop.best_metric) else None,
        "best_epoch": loop.best_epoch,
        "wall_s": round(wall_s, 3),
    }


def _finish(run: _Run, report: dict) -> None:
    """Final evaluation and report.json on rank 0, the closing progress line, a last barrier."""
    ctx = run.ctx
    if ctx.is_main and report["finished"] and run.cfg.eval_at_end:
        report["eval"] = _final_eval(run.model, run.rd, ctx.device, run.out)
    if ctx.is_main:
        (run.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    run.progress.emit(
        {
            "done": True,
            "ok": True,
            "run": str(run.out),
            "steps": run.loop.step,
            "total": run.plan.total_steps,
            "finished": report["finished"],
            "loss": run.last_terms.get("loss"),
            "wall_s": report["wall_s"],
        }
    )
    run.progress.close()
    barrier(ctx)


def auto_val_fraction(val_fraction: float | None, n_cases: int) -> float:
    """The validation fraction in force: the config's when set (>= 0), else (``None`` or negative = auto)
    :data:`AUTO_VAL_FRACTION` once there are :data:`AUTO_VAL_MIN_CASES` cases, 0 below that."""
    if val_fraction is not None and val_fraction >= 0:
        return float(val_fraction)
    return AUTO_VAL_FRACTION if n_cases >= AUTO_VAL_MIN_CASES else 0.0


def _final_eval(model, rd: RunData, device, out: Path) -> dict | None:
    from radgaze.training.evaluate import TRAINING_CASES_WARNING, evaluate_dataset

    if not rd.sessions_present:  # evaluation reads case records (fixations, findings) from the sessions
        log.warning("final evaluation skipped: the session files of %s are not here", rd.prepared)
        return None
    ds = rd.val if rd.val is not None else rd.train
    on_training = rd.val is None
    if on_training:
        log.warning(TRAINING_CASES_WARNING)
    log.info("evaluating on %d %s case(s) …", len(ds), "training" if on_training else "held-out")
    try:
        result = evaluate_dataset(_unwrap(model), ds, device=device)
    except ConfigError as exc:  # e.g. no labels to classify: evaluation is optional at the end of a run
        log.warning("final evaluation skipped: %s", exc)
        return None
    result["evaluated_on"] = "training cases" if on_training else "held-out validation cases"
    if on_training:
        result["warning"] = TRAINING_CASES_WARNING
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics lines logged after the state being resumed (they will be logged again)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                keep.append(line)
        except (json.JSONDecodeError, ValueError, AttributeError):
            continue
    path.write_text("".join(k + "\n" for k in keep))
