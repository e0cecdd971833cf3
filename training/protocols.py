"""``radgaze eval RUN --images CSV|DIR --protocol zeroshot|retrieval|linear-probe``: the EGMA paper's
evaluation protocols (arXiv 2403.12416, Tables I-III) on labelled image sets on disk.

Image sets (:func:`read_image_set`):

* a CSV with a path column (``path``, ``imgpath``, ``Path``, ``image``, ``file`` or ``--path-column``; relative
  paths from the CSV's folder or ``--root``) and either a label column (``label`` or ``--label-column``) or
  one-hot columns named as the classes (value 1 = positive), as MedCLIP's / the EGMA reference's
  ``chexpert-5x200-val-meta.csv`` has them; an optional ``split`` column (train / test, valid or val = test);
* a folder per class (``DIR/<class>/*``), or ``DIR/train/<class>/*`` + ``DIR/test/<class>/*``.

Broken rows (missing file, unknown label, not exactly one positive class where one is needed, unreadable
image) are counted and listed in the result, never fatal; a set with no usable image is one clear error.

Protocols (REFERENCE-NOTES, "EGMA reference implementation ... Evaluation" and "What the EGMA reference starts
from"):

* ``zeroshot``: global image embedding vs every prompt of every class; class score = max over its prompts;
  accuracy, macro F1 and AUC (mean over classes of the one-vs-rest AUROC of the class scores, as the
  reference's ``roc_auc_score`` on the indicator matrix), per-class AUROC.
* ``retrieval``: the queries are the prompts; image->text relevant = the prompts of the image's class (so
  with 5 queries a class, P@10 <= 0.5), text->image relevant = the images of the query's class; P@1/5/10.
* ``linear-probe`` (Table I, the linear classification setting of GLoRIA the paper adopts): the image encoder
  frozen, its pooled features computed once (no augmentation: a frozen encoder on fixed images), a randomly
  initialised linear head trained with binary cross-entropy per class (multi-label, as GLoRIA's CheXpert
  head) on 1 %, 10 % and 100 % of the training split; AdamW, 30 epochs, lr 5e-7, weight decay 1e-4, 6 linear
  warm-up epochs then cosine (the paper's fine-tuning settings); AUROC per class and their mean on the test
  split, for each seed and as mean and sd over seeds.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radgaze.capture.base.errors import CheckpointError, ConfigError, ImageLoadError

PROTOCOLS = ("zeroshot", "retrieval", "linear-probe")
PATH_COLUMNS = ("path", "imgpath", "Path", "image", "file", "filename")
LABEL_COLUMNS = ("label", "Label", "class")
TEST_SPLITS = ("test", "valid", "val", "validation")
KS = (1, 5, 10)


class ImageSetError(ConfigError):
    """A labelled image set that cannot be evaluated at all (no usable image, no labels)."""


@dataclass
class LabelledImage:
    path: Path
    row: str  # "CSV line 12" / "folder Edema"
    targets: tuple[int, ...]  # indices of the positive classes
    split: str | None = None  # "train" | "test" | None


@dataclass
class Broken:
    row: str
    path: str
    reason: str


@dataclass
class ImageSet:
    source: str
    classes: list[str]
    items: list[LabelledImage] = field(default_factory=list)
    broken: list[Broken] = field(default_factory=list)

    def broken_dicts(self) -> list[dict[str, str]]:
        return [asdict(b) for b in self.broken]


# ------------------------------------------------------------------------------------------ reading sets
def read_image_set(
    source: str | Path,
    classes: list[str] | None = None,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    root: str | Path | None = None,
    single_label: bool = True,
) -> ImageSet:
    """The labelled images of a CSV or a folder per class (see the module docstring).

    ``classes``: the class names (e.g. a prompt set's); None = the labels found. ``single_label``: rows must
    have exactly one positive class (zero-shot, retrieval); else any number (linear probe)."""
    src = Path(source)
    if src.is_dir():
        out = _read_folders(src, classes)
    elif src.is_file():
        out = _read_csv(
            src, classes, path_column, label_column, Path(root) if root else src.parent, single_label
        )
    else:
        raise ImageSetError(
            f"--images {source}: expected a CSV file or a folder per class, it does not exist"
        )
    if not out.items:
        first = f"; first: {out.broken[0].row}: {out.broken[0].reason}" if out.broken else ""
        raise ImageSetError(f"--images {source}: no usable image ({len(out.broken)} broken rows{first})")
    return out


_SPLIT_DIRS = {"train": "train", "test": "test", "valid": "test", "val": "test"}


def _read_folders(src: Path, classes: list[str] | None) -> ImageSet:
    subdirs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs and all(p.name in _SPLIT_DIRS for p in subdirs):
        parts = [(p, _SPLIT_DIRS[p.name]) for p in subdirs]
    else:
        parts = [(src, None)]
    class_dirs = [(d, split) for base, split in parts for d in sorted(base.iterdir()) if d.is_dir()]
    names = classes if classes is not None else sorted({d.name for d, _ in class_dirs})
    out = ImageSet(str(src), list(names))
    index = {c: i for i, c in enumerate(names)}
    for d, split in class_dirs:
        for f in sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")):
            row = f"folder {d.relative_to(src)}"
            if d.name not in index:
                out.broken.append(Broken(row, str(f), f"unknown label {d.name!r}; expected one of {names}"))
            else:
                out.items.append(LabelledImage(f, row, (index[d.name],), split))
    return out


def _pick_column(header: list[str], given: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    if given is not None:
        if given not in header:
            raise ImageSetError(f"--{what}-column {given!r}: not in the CSV header {header}")
        return given
    return next((c for c in candidates if c in header), None)


def _read_csv(
    src: Path,
    classes: list[str] | None,
    path_column: str | None,
    label_column: str | None,
    root: Path,
    single_label: bool,
) -> ImageSet:
    with open(src, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ImageSetError(f"--images {src}: no usable image (the CSV has no data rows)")
    header = list(rows[0].keys())
    pcol = _pick_column(header, path_column, PATH_COLUMNS, "path")
    if pcol is None:
        raise ImageSetError(
            f"--images {src}: expected a path column ({', '.join(PATH_COLUMNS)}), got {header}"
        )
    lcol = _pick_column(header, label_column, LABEL_COLUMNS, "label")
    if lcol is None and (classes is None or not set(classes) <= set(header)):
        raise ImageSetError(
            f"--images {src}: expected a label column ({', '.join(LABEL_COLUMNS)}) or one-hot columns named as "
            f"the classes {classes}; got {header}"
        )
    names = (
        list(classes) if classes is not None else sorted({r[lcol].strip() for r in rows if r[lcol].strip()})
    )
    out = ImageSet(str(src), names)
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        _add_row(out, r, f"CSV line {line}", pcol, lcol, root, single_label)
    return out


def _add_row(out: ImageSet, r: dict, row: str, pcol: str, lcol: str | None, root: Path, single: bool) -> None:
    raw = (r.get(pcol) or "").strip()
    path = Path(raw) if Path(raw).is_absolute() else root / raw
    if not raw or not path.is_file():
        out.broken.append(Broken(row, raw, "file not found" if raw else "empty path"))
        return
    if lcol is not None:
        label = (r.get(lcol) or "").strip()
        if label not in out.classes:
            out.broken.append(Broken(row, raw, f"unknown label {label!r}; expected one of {out.classes}"))
            return
        targets: tuple[int, ...] = (out.classes.index(label),)
    else:
        targets = tuple(i for i, c in enumerate(out.classes) if _is_one(r.get(c)))
        if single and len(targets) != 1:
            out.broken.append(
                Broken(
                    row, raw, f"expected exactly one positive class among {out.classes}, got {len(targets)}"
                )
            )
            return
    split = (r.get("split") or "").strip().lower() or None
    if split is not None and split != "train" and split not in TEST_SPLITS:
        out.broken.append(
            Broken(row, raw, f"unknown split {split!r}; expected train, {', '.join(TEST_SPLITS)}")
        )
        return
    out.items.append(LabelledImage(path, row, targets, "test" if split in TEST_SPLITS else split))


def _is_one(value: str | None) -> bool:
    try:
        return float(value or "nan") == 1.0
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------ encoding
@dataclass
class Encoded:
    """Per usable image: the normalised global embedding (N, D), the frozen backbone's pooled features
    (N, F) and its targets; ``items`` are the images that loaded (unreadable ones went to broken)."""

    items: list[LabelledImage]
    glob: torch.Tensor
    pooled: torch.Tensor


def _model_input(path: Path, size: int, mean: float, std: float) -> torch.Tensor:
    """A radiograph file -> (3, S, S) model input: its default window to [0, 1] (as training does,
    radgaze.training.data), letterboxed, normalised."""
    from radgaze.capture.io.images import apply_window, default_window, load_image
    from radgaze.model.image_transforms import letterbox_square, to_model_input

    img = load_image(path)
    center, width = default_window(img)
    pixels01 = apply_window(img.pixels, center, width).astype(np.float32) / 255.0
    square, _ = letterbox_square(pixels01, size)
    return to_model_input(square, mean, std)


@torch.no_grad()
def encode_images(
    model, image_set: ImageSet, *, device: str, batch_size: int = 32, bar: bool = False
) -> Encoded:
    """Every image of the set through the image encoder, with a progress bar over images; images that do
    not load are moved to ``image_set.broken``."""
    from tqdm import tqdm

    cfg = model.config
    ok: list[LabelledImage] = []
    glob, pooled, pending, pending_items = [], [], [], []

    def flush() -> None:
        if not pending:
            return
        _, p = model.image_encoder(torch.stack(pending).to(device))
        glob.append(F.normalize(model.image_proj(p), dim=-1).float().cpu())
        pooled.append(p.float().cpu())
        ok.extend(pending_items)
        pending.clear()
        pending_items.clear()

    for item in tqdm(image_set.items, desc="images", unit="img", disable=not bar, file=sys.stderr):
        try:
            pending.append(_model_input(item.path, int(cfg.image_size), cfg.image_mean, cfg.image_std))
            pending_items.append(item)
        except ImageLoadError as exc:
            image_set.broken.append(Broken(item.row, str(item.path), f"unreadable image: {exc}"))
        if len(pending) >= batch_size:
            flush()
    flush()
    if not ok:
        raise ImageSetError(
            f"--images {image_set.source}: no image could be read ({len(image_set.broken)} broken)"
        )
    return Encoded(ok, torch.cat(glob), torch.cat(pooled))


# ------------------------------------------------------------------------------------------- metrics
def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve of binary labels vs scores (Mann-Whitney U with tied ranks averaged);
    None when only one class is present."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def per_class_auc(targets: np.ndarray, scores: np.ndarray, classes: list[str]) -> tuple[dict, float | None]:
    """One-vs-rest AUROC per class of (N, C) indicator targets and scores; their mean over the classes
    where it is defined (None when none is)."""
    per = {c: roc_auc(targets[:, i], scores[:, i]) for i, c in enumerate(classes)}
    vals = [v for v in per.values() if v is not None]
    return per, (float(np.mean(vals)) if vals else None)


def _indicator(items: list[LabelledImage], n_classes: int) -> np.ndarray:
    y = np.zeros((len(items), n_classes), dtype=np.float32)
    for i, it in enumerate(items):
        y[i, list(it.targets)] = 1.0
    return y


# ------------------------------------------------------------------------------------------- prompts
def resolve_prompts(spec: str) -> dict[str, list[str]]:
    """A packaged prompt set (radgaze.model.zeroshot.PROMPT_SETS) or a JSON file: {"classes": {class:
    [prompts] or {"severity", "subtype", "location"[, "order"]}}} (the packaged form) or a plain
    {class: [prompts]}."""
    from radgaze.model.zeroshot import _PARTS, PROMPT_SETS, _combine, load_prompts

    if spec in PROMPT_SETS:
        return load_prompts(spec)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"--prompts {spec!r}: expected one of {PROMPT_SETS} or a JSON file, it does not exist"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--prompts {spec}: expected a JSON prompt file, got {exc}") from exc
    classes = data.get("classes", data) if isinstance(data, dict) else None
    if not isinstance(classes, dict) or not classes:
        raise ConfigError(
            f"--prompts {spec}: expected {{'classes': {{class: [prompts]}}}}, got {type(data).__name__}"
        )
    out: dict[str, list[str]] = {}
    for name, v in classes.items():
        if isinstance(v, dict):
            v = _combine(*(v.get(k, [""]) for k in v.get("order", _PARTS)))
        if not isinstance(v, list) or not v or not all(isinstance(s, str) and s.strip() for s in v):
            raise ConfigError(f"--prompts {spec}: class {name!r} needs a non-empty list of prompt strings")
        out[str(name)] = list(v)
    return out


@torch.no_grad()
def prompt_embeddings(model, prompts: dict[str, list[str]]) -> tuple[torch.Tensor, np.ndarray]:
    """All prompts as one-sentence reports -> ((T, D) normalised embeddings, (T,) class index of each)."""
    from radgaze.model.zeroshot import text_embeddings

    texts = [t for ts in prompts.values() for t in ts]
    owner = np.array([i for i, ts in enumerate(prompts.values()) for _ in ts])
    return text_embeddings(model, texts), owner


# ------------------------------------------------------------------------------------------ protocols
def zero_shot(enc: Encoded, text: torch.Tensor, owner: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1, AUC (mean one-vs-rest AUROC) and per-class AUROC; class score = max over its
    prompts of the cosine between global image and prompt embeddings."""
    from radgaze.model.zeroshot import accuracy_macro_f1, class_scores

    scores = class_scores((enc.glob @ text.T).numpy(), owner, len(classes))
    y = np.array([it.targets[0] for it in enc.items])
    acc, f1 = accuracy_macro_f1(y, scores.argmax(1), len(classes))
    per, auc = per_class_auc(_indicator(enc.items, len(classes)), scores, classes)
    counts = np.bincount(y, minlength=len(classes))
    return {
        "accuracy": acc,
        "macro_f1": f1,
        "auc": auc,
        "auc_per_class": per,
        "n_per_class": {c: int(n) for c, n in zip(classes, counts)},
    }


def retrieval(
    enc: Encoded, text: torch.Tensor, owner: np.ndarray, ks: tuple[int, ...] = KS
) -> dict[str, Any]:
    """P@k both ways; image->text relevant = the prompts of the image's class, text->image relevant = the
    images of the prompt's class. ``i2t_p@k_max`` is the best any model can reach (prompts per class / k)."""
    from radgaze.model.zeroshot import retrieval_precision_at_k

    y = np.array([it.targets[0] for it in enc.items])
    out: dict[str, Any] = retrieval_precision_at_k((enc.glob @ text.T).numpy(), y, owner, ks)
    per_class = np.bincount(owner)
    for k in ks:
        kk = min(k, len(owner))
        out[f"i2t_p@{k}_max"] = float(np.mean(np.minimum(per_class[y], kk) / kk))
    out["n_queries"] = len(owner)
    return out


@dataclass
class ProbeSettings:
    """Linear-probe settings; defaults = the paper's fine-tuning settings (appendix, "Fine-tuning Settings")."""

    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 30
    lr: float = 5e-7
    weight_decay: float = 1e-4
    warmup_epochs: int = 6
    batch_size: int = 64  # not stated in the paper
    test_fraction: float = 0.3  # held out (stratified, split_seed) only when the set has no train/test split
    split_seed: int = 0


def split_train_test(items: list[LabelledImage], s: ProbeSettings) -> tuple[list[int], list[int], str]:
    """(train indices, test indices, how): the set's own split column/folders when it has both parts, else
    a stratified hold-out of ``test_fraction`` per first target class, drawn with ``split_seed``."""
    train = [i for i, it in enumerate(items) if it.split == "train"]
    test = [i for i, it in enumerate(items) if it.split == "test"]
    if train and test:
        return train, test, "the set's train/test split"
    rng = np.random.default_rng(s.split_seed)
    groups: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.targets[0] if it.targets else -1, []).append(i)
    train, test = [], []
    for members in groups.values():
        members = list(rng.permutation(members))
        n_test = int(round(s.test_fraction * len(members)))
        n_test = min(max(n_test, 1), len(members) - 1) if len(members) >= 2 else 0
        test += members[:n_test]
        train += members[n_test:]
    if not train or not test:
        raise ImageSetError(
            f"linear probe: {len(items)} usable images cannot be split into train and test; give a split "
            "column (train/test) or more images"
        )
    return sorted(train), sorted(test), f"stratified hold-out of {s.test_fraction:g} (seed {s.split_seed})"


def fit_linear_probe(x: torch.Tensor, y: torch.Tensor, s: ProbeSettings, seed: int) -> torch.nn.Linear:
    """A randomly initialised linear head (seeded) trained on frozen features x (N, F) for indicator
    targets y (N, C): binary cross-entropy per class, AdamW, linear warm-up then cosine per step."""
    from radgaze.training.trainer import lr_multiplier

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = torch.nn.Linear(x.shape[1], y.shape[1]).to(x.device)
        order = [torch.randperm(len(x)) for _ in range(s.epochs)]
    steps_per_epoch = math.ceil(len(x) / s.batch_size)
    total, warmup = s.epochs * steps_per_epoch, s.warmup_epochs * steps_per_epoch
    opt = torch.optim.AdamW(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_multiplier(step, total, warmup))
    for perm in order:
        for b in range(steps_per_epoch):
            idx = perm[b * s.batch_size : (b + 1) * s.batch_size].to(x.device)
            loss = F.binary_cross_entropy_with_logits(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


def linear_probe(enc: Encoded, classes: list[str], s: ProbeSettings, device: str = "cpu") -> dict[str, Any]:
    """Table I: AUROC per class and mean on the test split for each training fraction and seed."""
    tr, te, how = split_train_test(enc.items, s)
    x = enc.pooled.to(device)
    y = torch.from_numpy(_indicator(enc.items, len(classes))).to(device)
    out: dict[str, Any] = {"split": how, "n_train_split": len(tr), "n_test": len(te), "settings": asdict(s)}
    results = {}
    for frac in s.fractions:
        runs = {}
        for seed in s.seeds:
            n = max(1, int(round(frac * len(tr))))
            sub = torch.tensor(np.random.default_rng(seed).permutation(tr)[:n], device=device)
            head = fit_linear_probe(x[sub], y[sub], s, seed)
            with torch.no_grad():
                scores = head(x[te]).float().cpu().numpy()
            per, mean = per_class_auc(y[te].cpu().numpy(), scores, classes)
            runs[str(seed)] = {"n_train": n, "auroc_per_class": per, "mean_auroc": mean}
        means = [r["mean_auroc"] for r in runs.values() if r["mean_auroc"] is not None]
        results[f"{frac:g}"] = {
            "n_train": runs[str(s.seeds[0])]["n_train"],
            "mean_auroc": float(np.mean(means)) if means else None,
            "sd_auroc": float(np.std(means, ddof=1)) if len(means) > 1 else None,
            "auroc_per_class": _mean_per_class(runs, classes),
            "seeds": runs,
        }
    out["fractions"] = results
    return out


def _mean_per_class(runs: dict, classes: list[str]) -> dict[str, float | None]:
    out = {}
    for c in classes:
        vals = [r["auroc_per_class"][c] for r in runs.values() if r["auroc_per_class"][c] is not None]
        out[c] = float(np.mean(vals)) if vals else None
    return out


# ------------------------------------------------------------------------------------------------ run
def checkpoint_dir(run: str | Path, which: str = "best") -> Path:
    """A run directory's checkpoints/<which> (falling back to last), or a checkpoint directory itself."""
    run = Path(run)
    if (run / "config.json").is_file() and (run / "model.safetensors").is_file():
        return run
    for name in (which, "last"):
        if (run / "checkpoints" / name).is_dir():
            return run / "checkpoints" / name
    raise CheckpointError(f"{run}: expected a run directory with checkpoints/best or checkpoints/last")


def default_prompts(protocol: str) -> str | None:
    """The paper's sets: CheXpert 5x200 for zero-shot (Table II), 8x200 for retrieval (Table III)."""
    return {"zeroshot": "chexpert5x200", "retrieval": "chexpert8x200"}.get(protocol)


def evaluate_images(
    run: str | Path,
    images: str | Path,
    protocol: str,
    *,
    prompts: str | None = None,
    device: str = "cpu",
    checkpoint: str = "best",
    probe: ProbeSettings | None = None,
    bar: bool = False,
    **set_options: Any,
) -> dict[str, Any]:
    """Load the run's model and run one protocol over a labelled image set; the result dict of the CLI."""
    from radgaze.model.checkpoint import load_checkpoint

    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol: expected one of {PROTOCOLS}, got {protocol!r}")
    prompts = prompts or default_prompts(protocol)
    prompt_set = resolve_prompts(prompts) if prompts else None
    classes = list(prompt_set) if prompt_set else None
    image_set = read_image_set(images, classes, single_label=protocol != "linear-probe", **set_options)
    ckpt = checkpoint_dir(run, checkpoint)
    model = load_checkpoint(ckpt, device=device)
    enc = encode_images(model, image_set, device=device, bar=bar)
    if protocol == "linear-probe":
        results = linear_probe(enc, image_set.classes, probe or ProbeSettings(), device)
    else:
        assert prompt_set is not None
        text, owner = prompt_embeddings(model, prompt_set)
        if protocol == "zeroshot":
            results = zero_shot(enc, text, owner, image_set.classes)
        else:
            results = retrieval(enc, text, owner)
    return {
        "protocol": protocol,
        "images": str(images),
        "checkpoint": str(ckpt),
        "prompts": prompts,
        "classes": image_set.classes,
        "n_images": len(enc.items),
        "n_broken": len(image_set.broken),
        "broken": image_set.broken_dicts(),
        "results": results,
    }


# -------------------------------------------------------------------------------------------- output
def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(result: dict[str, Any], max_broken: int = 20) -> str:
    """The result as a plain-text table for people."""
    r = result["results"]
    lines = [
        f"{result['protocol']} on {result['images']} ({result['n_images']} images, broken rows: "
        f"{result['n_broken']}); checkpoint {result['checkpoint']}; prompts {result['prompts']}"
    ]
    if result["protocol"] == "zeroshot":
        lines += [
            f"accuracy {_fmt(r['accuracy'])}   macro F1 {_fmt(r['macro_f1'])}   AUC {_fmt(r['auc'])}",
            "",
        ]
        lines.append(f"{'class':28s} {'n':>5s} {'AUROC':>7s}")
        for c in result["classes"]:
            lines.append(f"{c:28s} {r['n_per_class'][c]:5d} {_fmt(r['auc_per_class'][c]):>7s}")
    elif result["protocol"] == "retrieval":
        lines.append(f"{r['n_queries']} text queries")
        lines.append(f"{'k':>3s} {'I2T P@k':>8s} {'(max)':>7s} {'T2I P@k':>8s}")
        for k in KS:
            lines.append(
                f"{k:3d} {_fmt(r[f'i2t_p@{k}']):>8s} {_fmt(r[f'i2t_p@{k}_max']):>7s} {_fmt(r[f't2i_p@{k}']):>8s}"
            )
    else:
        lines += _probe_lines(r, result["classes"])
    if result["broken"]:
        lines += ["", f"broken rows: {result['n_broken']}"]
        lines += [f"  {b['row']}: {b['path']}: {b['reason']}" for b in result["broken"][:max_broken]]
        if result["n_broken"] > max_broken:
            lines.append(f"  ... {result['n_broken'] - max_broken} more (--json lists all)")
    return "\n".join(lines)


def _probe_lines(r: dict[str, Any], classes: list[str]) -> list[str]:
    s = r["settings"]
    lines = [
        f"train split {r['n_train_split']} / test {r['n_test']} ({r['split']}); {s['epochs']} epochs, lr {s['lr']:g}, "
        f"weight decay {s['weight_decay']:g}, {s['warmup_epochs']} warm-up epochs, seeds {s['seeds']}",
        "",
        f"{'fraction':>8s} {'n_train':>7s} {'mean AUROC':>11s} {'sd':>7s}  "
        + " ".join(f"{c[:12]:>12s}" for c in classes),
    ]
    for frac, f in r["fractions"].items():
        per = " ".join(f"{_fmt(f['auroc_per_class'][c]):>12s}" for c in classes)
        lines.append(
            f"{frac:>8s} {f['n_train']:7d} {_fmt(f['mean_auroc']):>11s} {_fmt(f['sd_auroc']):>7s}  {per}"
        )
    return lines
