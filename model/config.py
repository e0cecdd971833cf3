"""Model configuration: plain dataclasses, JSON round-trip, named presets.

:class:`ModelConfig` says which encoders to build and how; :class:`LossConfig` which loss terms to use and
with which weights. Every default is the paper's value (EGMA, arXiv 2403.12416) unless a comment says
otherwise; where the public reference code differs (see the design notes, REFERENCE-NOTES.md) the option that
reproduces it is named beside the default. This module imports neither torch nor transformers.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from radgaze.capture.base.errors import ConfigError

LOSS_NAMES = ("clip", "mlce", "filip", "egf", "egm")
GAZE_MIXES = ("add", "mean", "half_gaze")
PRESETS = ("paper", "tiny", "bench")

# Text encoders that are built locally with random weights (never from a hub): a tiny BERT over the
# built-in radiology vocabulary of radgaze.model.tiny_bert, with BertConfig fields from ModelConfig.text_encoder_kwargs.
RANDOM_TEXT_ENCODERS = ("tiny-bert", "random-bert")


@dataclass
class LossConfig:
    """Which loss terms are summed, and their knobs (EGMA Eq. 1-8; eCLIP for the ``eclip_*`` options).

    ``losses`` may hold any of ``clip`` (Eq. 1-2 on global features), ``mlce`` (Eq. 4 alone), ``filip``
    (the fine-grained contrastive part of Eq. 5 alone), ``egf`` (Eq. 5 = filip + mlce) and ``egm`` (Eq. 6-8).
    The default is the paper's total L = L_EGF + L_EGM ("Finally, the total loss of our model within a batch
    is L = L_EGF + L_EGM"); the global CLIP term is an option the paper does not use. docs/egma-fidelity.md
    lists every place where a default differs from the paper or from the public reference code, and why.
    """

    losses: tuple[str, ...] = ("egf", "egm")
    # Eq. 4-5: weights of the sentence->patch and patch->sentence MLCE terms. Paper: 1/2, 1/2 (Eq. 5's
    # 1/(2b)); reference code: 0.8 / 0.2.
    mlce_weight_s2p: float = 0.5
    mlce_weight_p2s: float = 0.5
    # Eq. 4 applies mlce to the cosine similarities x (paper). The reference code applies it to logits
    # already multiplied by the learned logit scale 1/tau: set True for that.
    mlce_scaled_by_temperature: bool = False
    # Eq. 5 divides the summed MLCE of the samples with gaze by the batch size b (1/(2b) sum_k); the
    # reference code divides by the number of samples with gaze: set True for that.
    mlce_per_gaze_sample: bool = False
    # Eq. 4's gaze label GL = (GS > 0). Float Gaussian heatmaps are > 0 almost everywhere, so on a 7x7 grid
    # ~90 % of patches come out "gazed" (measured on synthetic readings, see the README's experiment notes);
    # the reference code's 8-bit JPEG heatmaps zero their far tails. GL = (GS > frac * row max) with frac > 0
    # restores a sparse label; 0 is the paper as printed.
    mlce_label_min_frac: float = 0.0
    # A real sentence of a gazed sample whose heatmap row is empty (dictated without looking). False: left
    # out of both MLCE directions (it has no gaze label). True (reference code): a row with no positive
    # label and a negative column for every patch.
    mlce_empty_rows_negative: bool = False
    # Eq. 5 FILIP logits. Paper/FILIP: padded sentence slots are masked out of every max and mean, and the
    # text->image cross-entropy is softmaxed over images. The reference code lets zero-padded slots take
    # part in the image-side max and softmaxes both directions over texts; False reproduces each defect.
    filip_mask_padded: bool = True
    filip_t2i_over_images: bool = True
    # Eq. 6's omega "consists of sparse and binarize operations" (text after Eq. 7). "binary" (paper): row-wise
    # min-max scaling, sparsified at the threshold, then binarised: omega = 1 where the scaled similarity
    # reaches the threshold, else 0, so W = norm(omega + GS) mixes a 0/1 mask of the model's best matches
    # with the gaze map. "minmax": the scaled values themselves kept above the threshold (SPARC's sparse
    # weights, before the binarisation the paper adds; radgaze's earlier default). The reference code's
    # averaged mixes ("mean", "half_gaze" below) always use the min-max values.
    egm_omega: str = "binary"
    # The sparsity threshold on the min-max scaled similarities. None = 1/(number of columns), SPARC's
    # (Bica et al. 2024, the method EGM derives from); reference: 3/7, applied after mixing with gaze.
    egm_threshold: float | None = None
    # Added to every weight before the row normalisation (paper: 0; reference code: 0.01).
    egm_smoothing: float = 0.0
    # How gaze joins the model similarity in Eq. 6, sentence side (W^{T2I}, rows = sentences over patches):
    # "add": norm(omega(x) + GS) as printed in the paper; "mean": the reference's threshold((minmax(x) + GS)
    # / 2); "half_gaze": threshold(minmax(x) + GS / 2), the reference's patch side (an operator-precedence
    # slip in `min_max + gaze.T / 2.0`: gaze halved, min-max not).
    egm_gaze_mix: str = "add"
    # The same for the patch side (W^{I2T}, rows = patches over sentences); None = as egm_gaze_mix.
    # Reference: "half_gaze".
    egm_gaze_mix_patch: str | None = None
    # Samples without gaze (Eq. 6 without GS). None = the same threshold and weights as gazed samples
    # (paper). The reference code routes them to another function: threshold 1/7, weights 1/2, 1/2.
    egm_no_gaze_threshold: float | None = None
    egm_no_gaze_weights: tuple[float, float] | None = None  # (patch side, sentence side)
    # Eq. 2's InfoNCE is on cosine similarities, so the mapped features Cross_P / Cross_S are L2-normalised
    # before the logits (paper). The reference code uses the raw weighted sums: False for that.
    egm_normalize_mapped: bool = True
    # A one-sentence report (m = 1): the sentence side is a softmax over one candidate (constant, 0) and
    # every mapped patch Cross_P^i equals the one sentence, so the patch-side contrast has a floor of log n
    # and only pushes the sentence towards equal similarity with every patch. "zero" (radgaze's definition
    # of Eq. 8 at m = 1): both sides 0, the sample adds nothing (still counted in Eq. 8's 1/b). "mse"
    # (reference code): sentence side = summed squared error between Cross_S and S, patch side 0.
    egm_single_sentence: str = "zero"
    # Eq. 8 halves: patch-side (Cross_P vs P) and sentence-side (Cross_S vs S). Paper: 1/2, 1/2; the
    # reference code's instance weights are 0.7 image / 0.3 text.
    egm_weight_patch: float = 0.5
    egm_weight_sentence: float = 0.5
    # Weight of each term in the total (the paper sums L_EGF + L_EGM with weight 1).
    clip_weight: float = 1.0
    egf_weight: float = 1.0
    egm_weight: float = 1.0
    # eCLIP (arXiv 2403.10153; reference repository ykumards/eCLIP, see REFERENCE-NOTES.md). With
    # ModelConfig.eclip the model adds eCLIP's own loss: one CLIP over the main batch with an expert batch
    # of mixed images appended (so ``clip`` must not also be in ``losses``).
    eclip_mixup_alpha: float = 0.2  # lambda ~ Beta(alpha, alpha); reference code 0.2 (a summary says 0.3)
    eclip_dim: int = 256  # processor width (reference: Conv2d 3->256)
    eclip_heads: int = 8  # MHA heads (reference: 8)
    eclip_patch_px: int = 16  # processor patchify kernel = stride (reference: 16)
    # Curriculum, phase lengths int(total_steps * frac) as the reference: cold start (no expert batch; p = 0
    # while step <= cold steps, priming while step < cold steps), then p rises 0.05 -> 0.5 linearly over
    # the warm-up, falls 0.5 -> 0.05 over the cool-down, then stays at 0.05.
    eclip_cold_frac: float = 0.1
    eclip_warmup_frac: float = 0.3
    eclip_cooldown_frac: float = 0.4
    eclip_p_min: float = 0.05
    eclip_p_max: float = 0.5
    # Cold-start total (1 - w) * CLIP + w * MSE(processor(x, ones), x); reference aux_loss_proportion 0.3.
    eclip_prime_weight: float = 0.3
    eclip_weight: float = 1.0  # weight of eCLIP's CLIP term (main batch + expert batch)
    # Expert batch size as a fraction of the batch (reference: a separate loader at batch_size // 2).
    eclip_expert_frac: float = 0.5
    # Heatmap scaling before the processor: "batch" = divided by the expert batch's maximum (reference
    # `expert_heatmap / expert_heatmap.max()`); "sample" = by each sample's own maximum.
    eclip_heatmap_norm: str = "batch"
    # radgaze takes the expert samples from the same batch, so each expert report is also a main-batch
    # report. True: the copy is not used as a negative for the other's image (the reference's separate
    # expert data set has no such copies). False: the plain CLIP over the concatenation.
    eclip_mask_copies: bool = True
    eclip_lr_scale: float = 2.0  # learning-rate multiplier of the heatmap processor (reference: x2)

    def __post_init__(self) -> None:
        self.losses = tuple(self.losses)
        if self.egm_no_gaze_weights is not None:
            self.egm_no_gaze_weights = tuple(float(v) for v in self.egm_no_gaze_weights)  # type: ignore[assignment]

    @classmethod
    def reference_code(cls, **overrides: Any) -> LossConfig:
        """The training loss of the public EGMA reference code (MoMarky/EGMA, finetune_egma.py with
        SPARC_FILIP_PartGaze_Model), defects included: ``losses = ("egf",)`` = FILIP + MLCE, the only terms its
        shipped configuration trains (``loss_mix = ["filip_clip_loss", "mlce"]``; its newest configuration
        also sets gaze ratio 0, which is the data option ``gaze_ratio = 0``, not a loss option). FILIP: padded
        slots in the max, text->image softmaxed over texts. MLCE: 0.8/0.2 on scaled logits, per gaze sample,
        empty sentence rows as all-negative rows.

        The EGM options reproduce its gaze-guided cross-modal mapping (get_gaze_guided_sparc_finegrained_loss,
        commented out there) exactly when ``egm`` is added (``reference_code(losses=("egf", "egm"))``):
        sentence side threshold((minmax + GS)/2, 3/7), patch side threshold(minmax + GS/2, 3/7) (the
        precedence slip), +0.01, mapped features not normalised, m = 1: summed MSE on the sentence side and 0
        on the patch side, instance weights 0.7 image / 0.3 text; samples without gaze: threshold 1/7, weights
        1/2, 1/2. Tested against numbers from running that code (tests/model/reference_numbers.json)."""
        values: dict[str, Any] = {
            "losses": ("egf",),
            "mlce_weight_s2p": 0.8,
            "mlce_weight_p2s": 0.2,
            "mlce_scaled_by_temperature": True,
            "mlce_per_gaze_sample": True,
            "mlce_empty_rows_negative": True,
            "filip_mask_padded": False,
            "filip_t2i_over_images": False,
            "egm_omega": "minmax",
            "egm_threshold": 3 / 7,
            "egm_smoothing": 0.01,
            "egm_gaze_mix": "mean",
            "egm_gaze_mix_patch": "half_gaze",
            "egm_no_gaze_threshold": 1 / 7,
            "egm_no_gaze_weights": (0.5, 0.5),
            "egm_normalize_mapped": False,
            "egm_single_sentence": "mse",
            "egm_weight_patch": 0.7,
            "egm_weight_sentence": 0.3,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class ModelConfig:
    """The EGMA model: encoders, projection, temperature and losses."""

    image_encoder: str = "swin_tiny_patch4_window7_224"  # any timm model name
    # False: random init; True: timm's hub weights for image_encoder (ImageNet for Swin-T; downloaded once, or
    # only from the local cache with local_files_only); a str: a local weights file (.safetensors / .pth /
    # .bin, timm or original naming), a Hugging Face Swin directory, or a hub repo id such as
    # "microsoft/swin-tiny-patch4-window7-224" (the EGMA reference's), mapped onto timm's modules.
    image_pretrained: bool | str = False
    image_encoder_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model kwargs
    text_encoder: str = "emilyalsentzer/Bio_ClinicalBERT"  # hub name, local dir, or a RANDOM_TEXT_ENCODERS
    text_encoder_kwargs: dict[str, Any] = field(default_factory=dict)  # BertConfig fields (random encoders)
    # Sentence pooling (radgaze.model.encoders.TextEncoder): "mean" = masked mean of the last layer (default);
    # "last4" = mean of the last 4 hidden layers as the EGMA reference, then the masked mean over tokens;
    # "last4_unmasked" = the reference exactly (padding averaged in, a defect).
    text_pooling: str = "mean"
    local_files_only: bool = False
    embed_dim: int = 512  # EGMA appendix B-A: projections to 512
    image_size: int = 224  # EGMA appendix B-B: 224 x 224
    max_tokens: int = 77  # reference code: each sentence tokenized alone, max 77 tokens
    temperature_init: float = 0.07  # EGMA appendix B-A
    max_logit_scale: float = 100.0  # reference code: logit scale clamped to <= 100 (tau >= 0.01)
    # Grey-image normalisation of the EGMA reference code (REFERENCE-NOTES: mean 0.5863, std 0.2795).
    image_mean: float = 0.5863
    image_std: float = 0.2795
    loss: LossConfig = field(default_factory=LossConfig)
    eclip: bool = False  # eCLIP heatmap processor + mixup + curriculum (arXiv 2403.10153)

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):
            self.loss = _loss_from_dict(self.loss)
        self.loss.losses = tuple(self.loss.losses)
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loss"]["losses"] = list(self.loss.losses)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = copy.deepcopy(dict(d))
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"model config: unknown keys {sorted(unknown)}; allowed are {sorted(known)}")
        loss = _loss_from_dict(d.pop("loss", {}))
        return cls(loss=loss, **d)

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        """Named configurations.

        * ``paper``: ImageNet Swin-T at 224 px + Bio_ClinicalBERT (hub names or cache), the paper's total
          L_EGF + L_EGM.
        * ``tiny``: a 3-stage timm Swin (embed 32, one block per stage) at 112 px (7x7 = 49 patch grid,
          as Swin-T at 224) + a 2-layer random BERT built locally: CPU tests and demos in seconds.
        * ``bench``: Swin-T at 224 px + a 6-layer random BERT-base (EGMA appendix B-A: 6 layers,
          12 heads), the throughput benchmark of issue 5.
        """
        if name == "paper":
            return cls(image_pretrained=True)  # the reference starts from ImageNet Swin-T (REFERENCE-NOTES)
        if name == "tiny":
            return cls(
                image_encoder="swin_tiny_patch4_window7_224",
                image_encoder_kwargs={"depths": [1, 1, 1], "num_heads": [1, 2, 4], "embed_dim": 32},
                image_size=112,
                text_encoder="tiny-bert",
                local_files_only=True,
                embed_dim=64,
                max_tokens=32,
            )
        if name == "bench":
            return cls(
                text_encoder="random-bert",
                text_encoder_kwargs={
                    "hidden_size": 768,
                    "num_hidden_layers": 6,
                    "num_attention_heads": 12,
                    "intermediate_size": 3072,
                    "max_position_embeddings": 512,
                },
                local_files_only=True,
            )
        raise ConfigError(f"invalid value for the 'preset' parameter: allowed are {PRESETS}, got {name!r}")


def _loss_from_dict(d: dict[str, Any] | LossConfig) -> LossConfig:
    if isinstance(d, LossConfig):
        return d
    if not isinstance(d, dict):
        raise ConfigError(f"model config 'loss' must be a table, got {type(d).__name__}")
    known = {f.name for f in fields(LossConfig)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"model config [loss]: unknown keys {sorted(unknown)}; allowed are {sorted(known)}")
    d = dict(d)
    if "losses" in d:
        d["losses"] = tuple(d["losses"])
    return LossConfig(**d)


def _model_checks(cfg: ModelConfig) -> list[tuple[bool, str, str, object]]:
    """(ok, name, expected, got) of the encoder and projection settings."""
    lc = cfg.loss
    bad = [n for n in lc.losses if n not in LOSS_NAMES]
    return [
        (not bad and len(lc.losses) > 0, "loss.losses", f"a non-empty subset of {LOSS_NAMES}", lc.losses),
        (cfg.embed_dim >= 1, "embed_dim", ">= 1", cfg.embed_dim),
        (cfg.image_size >= 16, "image_size", ">= 16", cfg.image_size),
        (cfg.max_tokens >= 3, "max_tokens", ">= 3", cfg.max_tokens),
        (0.0 < cfg.temperature_init < 1.0, "temperature_init", "in (0, 1)", cfg.temperature_init),
        (cfg.max_logit_scale > 1.0, "max_logit_scale", "> 1", cfg.max_logit_scale),
        (cfg.image_std > 0, "image_std", "> 0", cfg.image_std),
        (
            cfg.text_pooling in ("mean", "last4", "last4_unmasked"),
            "text_pooling",
            "'mean', 'last4' or 'last4_unmasked'",
            cfg.text_pooling,
        ),
    ]


def _egm_checks(lc: LossConfig) -> list[tuple[bool, str, str, object]]:
    """(ok, name, expected, got) of the EGM (Eq. 6-8) options."""
    return [
        (
            lc.egm_threshold is None or 0.0 <= lc.egm_threshold < 1.0,
            "loss.egm_threshold",
            "None or in [0, 1)",
            lc.egm_threshold,
        ),
        (lc.egm_smoothing >= 0.0, "loss.egm_smoothing", ">= 0", lc.egm_smoothing),
        (lc.egm_gaze_mix in GAZE_MIXES, "loss.egm_gaze_mix", f"one of {GAZE_MIXES}", lc.egm_gaze_mix),
        (
            lc.egm_gaze_mix_patch is None or lc.egm_gaze_mix_patch in GAZE_MIXES,
            "loss.egm_gaze_mix_patch",
            f"None or one of {GAZE_MIXES}",
            lc.egm_gaze_mix_patch,
        ),
        (lc.egm_omega in ("binary", "minmax"), "loss.egm_omega", "'binary' or 'minmax'", lc.egm_omega),
        (
            lc.egm_omega == "minmax" or {lc.egm_gaze_mix, lc.egm_gaze_mix_patch} <= {"add", None},
            "loss.egm_omega",
            "'minmax' with the reference's averaged gaze mixes ('mean', 'half_gaze')",
            lc.egm_omega,
        ),
        (
            lc.egm_no_gaze_threshold is None or 0.0 <= lc.egm_no_gaze_threshold < 1.0,
            "loss.egm_no_gaze_threshold",
            "None or in [0, 1)",
            lc.egm_no_gaze_threshold,
        ),
        (
            lc.egm_no_gaze_weights is None or len(lc.egm_no_gaze_weights) == 2,
            "loss.egm_no_gaze_weights",
            "None or [patch weight, sentence weight]",
            lc.egm_no_gaze_weights,
        ),
        (
            lc.egm_single_sentence in ("zero", "mse"),
            "loss.egm_single_sentence",
            "'zero' or 'mse'",
            lc.egm_single_sentence,
        ),
    ]


def _eclip_checks(cfg: ModelConfig) -> list[tuple[bool, str, str, object]]:
    """(ok, name, expected, got) of the eCLIP options."""
    lc = cfg.loss
    return [
        (
            not (cfg.eclip and "clip" in lc.losses),
            "loss.losses",
            "no 'clip' with eclip = true (eCLIP computes the global CLIP term itself, over the main batch "
            "and its expert batch)",
            lc.losses,
        ),
        (
            lc.eclip_heatmap_norm in ("batch", "sample"),
            "loss.eclip_heatmap_norm",
            "'batch' or 'sample'",
            lc.eclip_heatmap_norm,
        ),
        (0.0 < lc.eclip_expert_frac <= 1.0, "loss.eclip_expert_frac", "in (0, 1]", lc.eclip_expert_frac),
        (0.0 <= lc.eclip_prime_weight <= 1.0, "loss.eclip_prime_weight", "in [0, 1]", lc.eclip_prime_weight),
        (lc.eclip_lr_scale > 0, "loss.eclip_lr_scale", "> 0", lc.eclip_lr_scale),
        (lc.eclip_mixup_alpha > 0, "loss.eclip_mixup_alpha", "> 0", lc.eclip_mixup_alpha),
        (lc.eclip_dim % lc.eclip_heads == 0, "loss.eclip_dim", "divisible by eclip_heads", lc.eclip_dim),
        (
            lc.eclip_cold_frac + lc.eclip_warmup_frac + lc.eclip_cooldown_frac <= 1.0,
            "loss.eclip_*_frac",
            "phases summing to <= 1",
            (lc.eclip_cold_frac, lc.eclip_warmup_frac, lc.eclip_cooldown_frac),
        ),
        (
            0.0 <= lc.eclip_p_min <= lc.eclip_p_max <= 1.0,
            "loss.eclip_p_min/p_max",
            "0 <= p_min <= p_max <= 1",
            (lc.eclip_p_min, lc.eclip_p_max),
        ),
        (
            cfg.image_size % lc.eclip_patch_px == 0 or not cfg.eclip,
            "loss.eclip_patch_px",
            "a divisor of image_size",
            lc.eclip_patch_px,
        ),
    ]


def validate(cfg: ModelConfig) -> None:
    """Raise ConfigError on values that cannot work."""
    checks = [*_model_checks(cfg), *_egm_checks(cfg.loss), *_eclip_checks(cfg)]
    for ok, name, expected, got in checks:
        if not ok:
            raise ConfigError(f"invalid value for {name!r}: expected {expected}, got {got!r}")
    if isinstance(cfg.image_pretrained, str) and not cfg.image_pretrained:
        raise ConfigError(
            "invalid value for 'image_pretrained': expected True, False, a path or a hub repo id, got ''"
        )
