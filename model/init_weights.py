"""Initialise an EGMAModel from another project's published weights (EGMA is continued pre-training).

The EGMA reference (public repository MoMarky/EGMA, ``finetune_egma.py``) starts from a MedCLIP-ViT checkpoint;
the paper's Table VII continues pre-training from CLIP, GLoRIA and MGCA weights. :func:`init_from` reads such a
checkpoint, maps its keys onto radgaze's modules and reports what was loaded, what stayed at its initial value
(missing), what had no counterpart (unexpected) and what had the wrong shape. A checkpoint that maps onto neither
encoder is refused with one line.

Key layouts (read from each project's public source):

* ``medclip`` (RyanWangZf/MedCLIP ``medclip/modeling_medclip.py``: MedCLIPModel with MedCLIPVisionModelViT and
  MedCLIPTextModel; ``pytorch_model.bin``): ``vision_model.model.*`` = a Hugging Face SwinModel (old naming
  ``attention.self.query`` ... of transformers 4.x, or the 5.x naming ``attention.q_proj`` ...),
  ``vision_model.projection_head.weight`` (768 -> 512, no bias), ``text_model.model.*`` = a BertModel (with
  pooler), ``text_model.projection_head.weight``, ``logit_scale``. MedCLIP-ResNet: ``vision_model.model.*`` =
  torchvision ResNet-50 whose ``fc`` (2048 -> 512, no bias) is the projection.
* ``gloria`` (marshuang80/gloria ``gloria/models/gloria_model.py``, ``vision_model.py``, ``text_model.py``; a
  PyTorch Lightning ``.ckpt`` with ``state_dict``): ``gloria.img_encoder.model.*`` (torchvision ResNet, fc =
  Identity), ``gloria.img_encoder.global_embedder`` (Linear 2048 -> 768 with bias), ``local_embedder`` (1x1
  conv), ``gloria.text_encoder.model.*`` (BertModel with pooler, no projection).
* ``mgca`` (HKU-MedAI/MGCA ``mgca/models/mgca/mgca_module.py``, ``backbones/encoder.py``, ``backbones/vits.py``,
  ``backbones/med.py``; Lightning ``.ckpt``): ``img_encoder_q.model.*`` (a ViT-B/16 with timm's names, or a
  torchvision ResNet-50), ``img_encoder_q.global_embed.head.*`` / ``local_embed`` (MLPs with BatchNorm),
  ``text_encoder_q.model.*`` (BLIP's med.py BertModel: BERT names, *no* token-type embeddings, no pooler),
  ``text_encoder_q.global_embed`` / ``local_embed``, ``patch_local_atten_layer``, ``word_local_atten_layer``,
  ``prototype_layer``.
* ``clip`` (openai/CLIP ``clip/model.py``; open_clip's ``open_clip_pytorch_model.bin`` has the same keys):
  ``visual.*`` (VisionTransformer: conv1, class_embedding, positional_embedding, ln_pre,
  transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_post, proj),
  ``token_embedding``, ``positional_embedding``, ``transformer.*``, ``ln_final``, ``text_projection``,
  ``logit_scale``. radgaze's text encoder is a BERT, so CLIP's text transformer has no counterpart: only the
  image tower (onto a timm ``vit_*_clip_*`` image encoder), its projection and the temperature load.
* ``radgaze``: our own ``model.safetensors`` (keys as the model's).

What cannot carry over is reported, never guessed: projections that are MLPs (MGCA) or carry a bias radgaze's
bias-free projections lack (GLoRIA) are unexpected keys and the radgaze projection keeps its initial value.
"""

from __future__ import annotations

import pickle
import re
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from radgaze.capture.base.errors import CheckpointError

LAYOUTS = ("auto", "medclip", "gloria", "mgca", "clip", "radgaze")
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_pytorch_model.bin",
    "open_clip_model.safetensors",
)
# Buffers the foreign modules persist but radgaze recomputes (never "unexpected").
IGNORED_SUFFIXES = ("relative_position_index", "position_ids", "attn_mask", "num_batches_tracked_unused")


@dataclass
class InitReport:
    """What :func:`init_from` did; ``to_dict`` for run reports, ``lines`` for logs."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)  # radgaze keys given a checkpoint value
    missing: list[str] = field(default_factory=list)  # radgaze keys left at their initial value
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys without a counterpart
    mismatched: list[str] = field(default_factory=list)  # "key: checkpoint shape vs radgaze shape"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self, limit: int = 8) -> list[str]:
        """A short human summary: counts, then the first ``limit`` keys of each non-empty list."""
        out = [
            f"init from {self.source} ({self.layout} layout): {len(self.loaded)} tensors loaded, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, {len(self.mismatched)} mismatched"
        ]
        for name in ("missing", "unexpected", "mismatched"):
            keys = getattr(self, name)
            if keys:
                more = f" ... (+{len(keys) - limit})" if len(keys) > limit else ""
                out.append(f"  {name}: {', '.join(keys[:limit])}{more}")
        out += [f"  note: {n}" for n in self.notes]
        return out


# ------------------------------------------------------------------------------------------- reading
class _Stub(dict):
    """Stands for any non-tensor object in a pickled checkpoint (hyper-parameters, callbacks, Lightning's
    AttributeDict, OmegaConf's DictConfig): it accepts whatever the pickle feeds it and runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
}


class _StubUnpickler(pickle.Unpickler):
    """Resolves only tensor-rebuilding globals; every other class becomes :class:`_Stub` (no import, no
    code run), so a Lightning checkpoint whose hyper-parameters are OmegaConf objects (GLoRIA) loads
    without OmegaConf and without trusting the file."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        return _Stub


_stub_pickle = types.ModuleType("radgaze_stub_pickle")
_stub_pickle.Unpickler = _StubUnpickler  # type: ignore[attr-defined]
_stub_pickle.load = pickle.load  # type: ignore[attr-defined]
_stub_pickle.__name__ = "pickle"


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive (OpenAI's CLIP .pt files): a zip with code/ and constants.pkl inside."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") for n in zf.namelist())


def _torch_load(path: Path) -> Any:
    if _is_torchscript(path):
        import warnings

        with warnings.catch_warnings():  # torch deprecates TorchScript; its archives still hold the weights
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # non-tensor objects inside: read again with every such object stubbed out
    except RuntimeError as exc:
        raise CheckpointError(f"--init {path}: expected a PyTorch checkpoint, got {exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_stub_pickle)
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises many types
        raise CheckpointError(
            f"--init {path}: expected a PyTorch checkpoint, got unreadable data ({exc})"
        ) from exc


def _weights_file(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        ckpts = sorted(path.glob("*.ckpt")) + sorted(path.glob("*.pt")) + sorted(path.glob("*.pth"))
        if len(ckpts) == 1:
            return ckpts[0]
        raise CheckpointError(
            f"--init {path}: expected a weights file in the directory ({', '.join(WEIGHT_FILES)} or one "
            f"*.ckpt/*.pt/*.pth), found {len(ckpts)} candidates"
        )
    raise CheckpointError(f"--init {path}: expected a checkpoint file or directory, it does not exist")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint file or directory (safetensors, torch pickle, Lightning ``.ckpt`` with
    ``state_dict``, ``{"model": ...}`` wrappers, DataParallel ``module.`` prefixes removed)."""
    file = _weights_file(Path(path))
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(file))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"--init {file}: expected a safetensors file, got {exc}") from exc
    else:
        obj = _torch_load(file)
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"--init {file}: expected a mapping of tensors, got {type(obj).__name__}")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not sd:
        raise CheckpointError(f"--init {file}: expected tensors in the checkpoint, found none")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def detect_layout(keys: list[str]) -> str:
    """Which project wrote a state dict, from its key prefixes (``radgaze`` when it is ours)."""
    ks = set(keys)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in ks)

    if has("image_encoder.backbone.") or has("text_encoder.bert."):
        return "radgaze"
    if has("vision_model.") or has("text_model."):
        return "medclip"
    if has("gloria.") or (has("img_encoder.model.") and has("text_encoder.model.")):
        return "gloria"
    if has("img_encoder_q.") or has("text_encoder_q."):
        return "mgca"
    if has("visual.") or "text_projection" in ks:
        return "clip"
    raise CheckpointError(
        "--init: could not tell which model wrote this checkpoint; expected keys starting with "
        "vision_model./text_model. (MedCLIP), gloria. (GLoRIA), img_encoder_q. (MGCA), visual. (CLIP) or "
        f"image_encoder./text_encoder. (radgaze); got e.g. {sorted(ks)[:5]}"
    )


# ---------------------------------------------------------------------------------------- key mappers
# Each mapper takes the tensors under one module prefix (prefix removed) and returns (mapped, unused):
# mapped = {key in the radgaze submodule: tensor}, unused = keys it has no place for.
Mapped = tuple[dict[str, Tensor], list[str]]

# Hugging Face Swin block parameters -> timm's, both naming generations: transformers 4.x
# ("attention.self.query", the naming of the published microsoft/swin-tiny-patch4-window7-224 and MedCLIP
# files) and 5.x ("attention.q_proj"; transformers' own conversion_mapping lists the pairs).
_HF_SWIN_BLOCK = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.self.relative_position_bias_table": "attn.relative_position_bias_table",
    "attention.relative_position_bias.relative_position_bias_table": "attn.relative_position_bias_table",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "mlp.fc1": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc2": "mlp.fc2",
}
_HF_SWIN_QKV = re.compile(r"attention\.(?:self\.(query|key|value)|([qkv])_proj)\.(weight|bias)$")


def _ignored(key: str) -> bool:
    return key.endswith(IGNORED_SUFFIXES)


def _split_param(rest: str) -> tuple[str, str]:
    """ "mlp.fc1.weight" -> ("mlp.fc1", ".weight"); a bare parameter name keeps an empty suffix."""
    for suffix in (".weight", ".bias"):
        if rest.endswith(suffix):
            return rest[: -len(suffix)], suffix
    return rest, ""


def is_hf_swin(sd: dict[str, Tensor]) -> bool:
    """A Hugging Face SwinModel (or SwinFor... with ``swin.``) state dict."""
    return any(k.split("swin.", 1)[-1].startswith("embeddings.patch_embeddings.") for k in sd)


def hf_swin_to_timm(sd: dict[str, Tensor]) -> Mapped:
    """Hugging Face Swin keys -> timm ``swin_*`` keys. q/k/v are concatenated into timm's qkv; HF's
    downsample at the end of stage i is timm's at the start of stage i + 1 (timm's own checkpoint filter
    shifts Microsoft's original keys the same way); the patch-merging channel order is the same in both."""
    out: dict[str, Tensor] = {}
    unused: list[str] = []
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, v in sd.items():
        k = key[len("swin.") :] if key.startswith("swin.") else key
        if _ignored(k):
            continue
        target = _hf_swin_key(k, v, qkv)
        if target is None:
            unused.append(key)
        elif target:
            out[target] = v
    for (base, kind), parts in qkv.items():
        if set(parts) == {"q", "k", "v"}:
            out[f"{base}attn.qkv{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
        else:
            unused += [f"{base}attention.{p}{kind}" for p in parts]
    return out, unused


def _hf_swin_key(k: str, v: Tensor, qkv: dict) -> str | None:
    """The timm key of one HF Swin key ("" when collected into ``qkv``, None when it has no place)."""
    m = re.match(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$", k)
    if m:
        base = f"layers.{m[1]}.blocks.{m[2]}."
        q = _HF_SWIN_QKV.match(m[3])
        if q:
            qkv.setdefault((base, "." + q[3]), {})[(q[1] or q[2])[0]] = v
            return ""
        module, suffix = _split_param(m[3])
        return base + _HF_SWIN_BLOCK[module] + suffix if module in _HF_SWIN_BLOCK else None
    m = re.match(r"encoder\.layers\.(\d+)\.downsample\.(.+)$", k)
    if m:
        return f"layers.{int(m[1]) + 1}.downsample.{m[2]}"
    for src, dst in (
        ("embeddings.patch_embeddings.projection.", "patch_embed.proj."),
        ("embeddings.norm.", "patch_embed.norm."),
        ("layernorm.", "norm."),
    ):
        if k.startswith(src):
            return dst + k[len(src) :]
    return None


def bert_keys(sd: dict[str, Tensor]) -> Mapped:
    """A BertModel's keys onto radgaze's pooler-free BertModel: same names; the pooler has no place."""
    out = {k: v for k, v in sd.items() if not k.startswith("pooler.") and not _ignored(k)}
    return out, [k for k in sd if k.startswith("pooler.")]


def resnet_keys(sd: dict[str, Tensor]) -> Mapped:
    """torchvision ResNet keys = timm ResNet keys (conv1, bn1, layer1..4, fc); ``fc`` is returned unused
    (radgaze's backbone has no classifier; callers may map it onto the projection)."""
    out = {k: v for k, v in sd.items() if not k.startswith("fc.") and not _ignored(k)}
    return out, [k for k in sd if k.startswith("fc.")]


_CLIP_VISUAL = (
    (r"^conv1\.", "patch_embed.proj."),
    (r"^ln_pre\.", "norm_pre."),
    (r"^ln_post\.", "norm."),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.", r"blocks.\1.norm1."),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.", r"blocks.\1.norm2."),
    (r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$", r"blocks.\1.attn.qkv.\2"),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"blocks.\1.mlp.fc1."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"blocks.\1.mlp.fc2."),
)


def clip_visual_to_timm(sd: dict[str, Tensor]) -> Mapped:
    """CLIP's VisionTransformer (keys under ``visual.``) -> timm ``vit_*_clip_*`` keys; ``proj`` is left
    unused for the caller (it is the image projection, x @ proj)."""
    out: dict[str, Tensor] = {}
    unused: list[str] = []
    for k, v in sd.items():
        if k == "class_embedding":
            out["cls_token"] = v.reshape(1, 1, -1)
        elif k == "positional_embedding":
            out["pos_embed"] = v.unsqueeze(0)
        else:
            for pattern, repl in _CLIP_VISUAL:
                if re.match(pattern, k):
                    out[re.sub(pattern, repl, k)] = v
                    break
            else:
                unused.append(k)
    return out, unused


# ------------------------------------------------------------------------------------------- layouts
class _Plan:
    """Collects radgaze keys -> tensors and the checkpoint keys that found no place."""

    def __init__(self) -> None:
        self.mapped: dict[str, Tensor] = {}
        self.unexpected: list[str] = []
        self.notes: list[str] = []

    def add(self, prefix_ours: str, mapped: Mapped, prefix_theirs: str) -> None:
        out, unused = mapped
        self.mapped.update({prefix_ours + k: v for k, v in out.items()})
        self.unexpected += [prefix_theirs + k for k in unused]

    def put(self, ours: str, value: Tensor | None) -> None:
        if value is not None:
            self.mapped[ours] = value

    def rest(self, sd: dict[str, Tensor], used_prefixes: tuple[str, ...], used_keys: tuple[str, ...]) -> None:
        """Every checkpoint key outside what the layout consumed is unexpected."""
        self.unexpected += [
            k for k in sd if not k.startswith(used_prefixes) and k not in used_keys and not _ignored(k)
        ]


def _take(sd: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _image_backbone(plan: _Plan, sub: dict[str, Tensor], theirs: str) -> dict[str, Tensor]:
    """A foreign image tower (HF Swin, ViT with timm names, or torchvision ResNet) onto the backbone;
    returns the ResNet ``fc`` tensors it left over (MedCLIP-ResNet's projection)."""
    ours = "image_encoder.backbone."
    if is_hf_swin(sub):
        plan.add(ours, hf_swin_to_timm(sub), theirs)
        return {}
    if any(k.startswith("blocks.") for k in sub):  # ViT whose names are timm's (MGCA's vits.py, BLIP's)
        plan.add(ours, ({k: v for k, v in sub.items() if not _ignored(k)}, []), theirs)
        return {}
    out, _ = resnet_keys(sub)
    plan.add(ours, (out, []), theirs)
    return {k: v for k, v in sub.items() if k.startswith("fc.")}


def _plan_medclip(sd: dict[str, Tensor]) -> _Plan:
    plan = _Plan()
    fc = _image_backbone(plan, _take(sd, "vision_model.model."), "vision_model.model.")
    plan.put("image_proj.weight", fc.get("fc.weight"))  # MedCLIP-ResNet: fc (no bias) is the projection
    plan.unexpected += [f"vision_model.model.{k}" for k in fc if k != "fc.weight"]
    plan.put("image_proj.weight", sd.get("vision_model.projection_head.weight"))
    plan.add("text_encoder.bert.", bert_keys(_take(sd, "text_model.model.")), "text_model.model.")
    plan.put("text_proj.weight", sd.get("text_model.projection_head.weight"))
    plan.put("logit_scale", sd.get("logit_scale"))
    used = ("vision_model.projection_head.weight", "text_model.projection_head.weight", "logit_scale")
    plan.rest(sd, ("vision_model.model.", "text_model.model."), used)
    return plan


def _plan_gloria(sd: dict[str, Tensor]) -> _Plan:
    sd = {k[len("gloria.") :] if k.startswith("gloria.") else k: v for k, v in sd.items()}
    plan = _Plan()
    _image_backbone(plan, _take(sd, "img_encoder.model."), "gloria.img_encoder.model.")
    plan.put("image_proj.weight", sd.get("img_encoder.global_embedder.weight"))
    if "img_encoder.global_embedder.bias" in sd:
        plan.notes.append(
            "GLoRIA's global_embedder has a bias; radgaze's projection has none, so the bias is dropped"
        )
    plan.add("text_encoder.bert.", bert_keys(_take(sd, "text_encoder.model.")), "gloria.text_encoder.model.")
    plan.notes.append(
        "GLoRIA has no text projection (768-d BERT features): text_proj keeps its initial value"
    )
    plan.rest(sd, ("img_encoder.model.", "text_encoder.model."), ("img_encoder.global_embedder.weight",))
    plan.unexpected = [k if k.startswith("gloria.") else f"gloria.{k}" for k in plan.unexpected]
    return plan


def _plan_mgca(sd: dict[str, Tensor]) -> _Plan:
    plan = _Plan()
    _image_backbone(plan, _take(sd, "img_encoder_q.model."), "img_encoder_q.model.")
    plan.add("text_encoder.bert.", bert_keys(_take(sd, "text_encoder_q.model.")), "text_encoder_q.model.")
    plan.notes.append(
        "MGCA's projections are MLPs with BatchNorm (global_embed/local_embed): they have no place in "
        "radgaze's linear projections, which keep their initial values"
    )
    plan.rest(sd, ("img_encoder_q.model.", "text_encoder_q.model."), ())
    return plan


def _plan_clip(sd: dict[str, Tensor]) -> _Plan:
    plan = _Plan()
    visual = _take(sd, "visual.")
    proj = visual.pop("proj", None)
    plan.add("image_encoder.backbone.", clip_visual_to_timm(visual), "visual.")
    plan.put("image_proj.weight", None if proj is None else proj.T.contiguous())  # CLIP: x @ proj
    plan.put("logit_scale", sd.get("logit_scale"))
    plan.rest(sd, ("visual.",), ("logit_scale",))
    if any(k.startswith("transformer.") for k in sd):
        plan.notes.append(
            "CLIP's text transformer has no counterpart in radgaze's BERT text encoder: only the image "
            "tower, its projection and the temperature are loaded"
        )
    return plan


def _plan_radgaze(sd: dict[str, Tensor]) -> _Plan:
    plan = _Plan()
    plan.mapped = dict(sd)
    return plan


_PLANS = {
    "medclip": _plan_medclip,
    "gloria": _plan_gloria,
    "mgca": _plan_mgca,
    "clip": _plan_clip,
    "radgaze": _plan_radgaze,
}


# --------------------------------------------------------------------------------------------- apply
def apply_state(module: nn.Module, mapped: dict[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """Copy ``mapped`` into ``module`` where names and shapes agree -> (loaded, absent, mismatched)
    (absent = mapped keys the module does not have)."""
    own = module.state_dict()
    ok: dict[str, Tensor] = {}
    absent, mismatched = [], []
    for k, v in mapped.items():
        if k not in own:
            absent.append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            mismatched.append(f"{k}: checkpoint {tuple(v.shape)} vs radgaze {tuple(own[k].shape)}")
        else:
            ok[k] = v.to(own[k].dtype)
    module.load_state_dict(ok, strict=False)
    return sorted(ok), absent, mismatched


def init_from(model: nn.Module, path: str | Path, layout: str = "auto") -> InitReport:
    """Load the weights at ``path`` (file or directory) into ``model`` (an EGMAModel) in place.

    Raises CheckpointError when nothing maps onto either encoder."""
    if layout not in LAYOUTS:
        raise CheckpointError(f"--init layout: expected one of {LAYOUTS}, got {layout!r}")
    sd = read_state_dict(path)
    layout = detect_layout(list(sd)) if layout == "auto" else layout
    plan = _PLANS[layout](sd)
    if layout == "mgca":
        _zero_token_types(model, plan)
    loaded, absent, mismatched = apply_state(model, plan.mapped)
    report = InitReport(
        source=str(path),
        layout=layout,
        loaded=loaded,
        missing=sorted(set(model.state_dict()) - set(loaded)),
        unexpected=sorted(plan.unexpected + [f"(mapped) {k}" for k in absent]),
        mismatched=mismatched,
        notes=plan.notes,
    )
    if not any(k.startswith(("image_encoder.", "text_encoder.")) for k in loaded):
        raise CheckpointError(
            f"--init {path}: nothing in this {layout} checkpoint maps onto radgaze's image or text encoder "
            f"({len(sd)} tensors; {len(mismatched)} with other shapes, e.g. {mismatched[:2]}; "
            f"{len(report.unexpected)} without a counterpart, e.g. {report.unexpected[:3]})"
        )
    return report


def _zero_token_types(model: nn.Module, plan: _Plan) -> None:
    """MGCA's BERT (BLIP's med.py) has no token-type embeddings: zero radgaze's, so the embedding sum
    equals MGCA's, when the checkpoint brings a BERT."""
    key = "text_encoder.bert.embeddings.token_type_embeddings.weight"
    own = model.state_dict()
    if key in own and key not in plan.mapped and any(k.startswith("text_encoder.bert.") for k in plan.mapped):
        plan.mapped[key] = torch.zeros_like(own[key])
        plan.notes.append("MGCA's BERT has no token-type embeddings: radgaze's are set to 0")
