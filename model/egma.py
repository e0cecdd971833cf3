"""The EGMA model (arXiv 2403.12416): encoders, projections, temperature and the loss assembly.

``EGMAModel(config)`` builds a timm image encoder and a BERT text encoder (radgaze.model.encoders), linear
projections (no bias, as the reference) to ``embed_dim`` and a learnable logit scale 1/tau initialised at
1/0.07 and clamped to ``max_logit_scale``. ``forward(batch)`` returns a dict whose ``*_loss`` keys the
trainer sums (see radgaze.model.losses for each term).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radgaze.model import distributed as dist_utils
from radgaze.model import eclip as ec
from radgaze.model.config import ModelConfig
from radgaze.model.encoders import ImageEncoder, TextEncoder, load_text_backbone
from radgaze.model.losses import clip_loss, egm_loss, filip_loss, mlce_loss


class EGMAModel(nn.Module):
    """Image/text encoders + projections + temperature; ``forward`` computes the configured losses."""

    def __init__(self, config: ModelConfig, *, text_backbone: tuple[nn.Module, Any] | None = None) -> None:
        """``text_backbone`` = (BERT module, tokenizer) to use instead of loading ``config.text_encoder``
        (load_checkpoint passes an architecture-only BERT whose weights come from the checkpoint)."""
        super().__init__()
        self.config = config
        self.image_encoder = ImageEncoder(config)
        bert, self.tokenizer = text_backbone if text_backbone is not None else load_text_backbone(config)
        self.text_encoder = TextEncoder(bert, config.text_pooling)
        self.image_proj = nn.Linear(self.image_encoder.num_features, config.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text_encoder.num_features, config.embed_dim, bias=False)
        # EGMA appendix B-A: learnable temperature initialised at 0.07 (stored as log(1/tau), CLIP style).
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature_init)))
        lc = config.loss
        self.heatmap_processor = (
            ec.HeatmapProcessor(
                lc.eclip_dim, lc.eclip_heads, lc.eclip_patch_px, heatmap_norm=lc.eclip_heatmap_norm
            )
            if config.eclip
            else None
        )

    def param_lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter-name prefix, for the trainer's optimiser groups: the eCLIP
        heatmap processor trains at eclip_lr_scale x the base rate (reference: x2)."""
        if self.heatmap_processor is None:
            return {}
        return {"heatmap_processor.": self.config.loss.eclip_lr_scale}

    @property
    def patch_grid(self) -> int:
        """Side of the patch grid (n = patch_grid**2), e.g. 7 for Swin-T at 224 px."""
        return self.image_encoder.patch_grid

    def scale(self) -> Tensor:
        """1/tau, clamped to ``config.max_logit_scale`` (0-d tensor)."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    # ---------------------------------------------------------------- encoding
    def tokenize(self, reports: list[list[str]]) -> dict[str, Tensor]:
        """Reports (lists of sentences) -> input_ids, attention_mask (B, m, L) and sentence_mask (B, m).

        Each sentence is tokenized alone (reference code), truncated to ``max_tokens``; m is the longest
        report (at least 1), L the longest sentence.
        """
        b = len(reports)
        m = max([len(r) for r in reports] + [1])
        flat = [s for r in reports for s in r]
        if flat:
            enc = self.tokenizer(
                flat, padding=True, truncation=True, max_length=self.config.max_tokens, return_tensors="pt"
            )
            ids, am = enc["input_ids"], enc["attention_mask"]
        else:
            ids = am = torch.zeros(0, 2, dtype=torch.long)
        sentence_mask = torch.zeros(b, m, dtype=torch.bool)
        for k, r in enumerate(reports):
            sentence_mask[k, : len(r)] = True
        input_ids = torch.zeros(b, m, ids.shape[1], dtype=torch.long)
        attention_mask = torch.zeros(b, m, ids.shape[1], dtype=torch.long)
        input_ids[sentence_mask] = ids
        attention_mask[sentence_mask] = am
        return {"input_ids": input_ids, "attention_mask": attention_mask, "sentence_mask": sentence_mask}

    def encode_image(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, 3, S, S) -> patches (B, n, D), global (B, D), both L2-normalised."""
        tokens, pooled = self.image_encoder(images)
        return F.normalize(self.image_proj(tokens), dim=-1), F.normalize(self.image_proj(pooled), dim=-1)

    def encode_text(
        self, input_ids: Tensor, attention_mask: Tensor, sentence_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(B, m, L) ids/mask + (B, m) sentence mask -> sentences (B, m, D) (padded slots 0), report (B, D).

        Only real sentences run through BERT, trimmed to their longest length. The report embedding is the
        normalised mean of its sentence embeddings (0 for a report without sentences).
        """
        b, m, _ = input_ids.shape
        flat = sentence_mask.reshape(-1)
        ids = input_ids.reshape(b * m, -1)[flat]
        am = attention_mask.reshape(b * m, -1)[flat]
        length = max(int(am.sum(1).max()) if am.shape[0] else 1, 1)
        d = self.config.embed_dim
        if ids.shape[0]:
            feats = F.normalize(self.text_proj(self.text_encoder(ids[:, :length], am[:, :length])), dim=-1)
        else:
            feats = self.text_proj.weight.new_zeros(0, d)
        index = flat.nonzero().squeeze(1).to(feats.device)
        sentences = feats.new_zeros(b * m, d).index_put((index,), feats).reshape(b, m, d)
        w = sentence_mask.to(sentences.device, sentences.dtype)[..., None]
        report = F.normalize((sentences * w).sum(1) / w.sum(1).clamp_min(1.0), dim=-1)
        return sentences, report

    # ---------------------------------------------------------------- losses
    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss terms for a batch (keys ending in ``_loss`` are summed by the trainer; others are logs).

        batch: image (B, 3, S, S); input_ids, attention_mask, sentence_mask from :meth:`tokenize`; optional
        gaze (B, m, n) (rows sum to 1, zero rows = no gaze), has_gaze (B,) bool; for eCLIP optional
        heatmap_image (B, 1, S, S), step and total_steps.
        """
        image = batch["image"]
        patches, glob = self.encode_image(image)
        sentence_mask = batch["sentence_mask"].to(image.device)
        sentences, report = self.encode_text(
            batch["input_ids"].to(image.device), batch["attention_mask"].to(image.device), sentence_mask
        )
        b, m, n = sentences.shape[0], sentences.shape[1], patches.shape[1]
        gaze = batch.get("gaze")
        gaze = patches.new_zeros(b, m, n) if gaze is None else gaze.to(image.device, patches.dtype)
        if gaze.shape != (b, m, n):
            raise ValueError(
                f"batch['gaze']: expected shape {(b, m, n)} (B, sentences, patches), got {tuple(gaze.shape)}"
            )
        has_gaze = batch.get("has_gaze")
        has_gaze = torch.zeros(b, dtype=torch.bool) if has_gaze is None else has_gaze
        has_gaze = has_gaze.to(image.device, torch.bool)
        # Losses in float32 even under bf16/fp16 autocast (softmax/logsumexp over the batch need the range).
        with torch.autocast(image.device.type, enabled=False):
            scale = self.scale().float()
            feats = (t.float() for t in (patches, glob, sentences, report))
            out = self.loss_terms(*feats, sentence_mask, gaze.float(), has_gaze, scale)
        if self.heatmap_processor is not None:
            out.update(self.eclip_terms(batch, has_gaze, glob.float(), report.float(), scale))
        out["logit_scale"] = scale.detach()
        return out

    def loss_terms(
        self,
        patches: Tensor,
        glob: Tensor,
        sentences: Tensor,
        report: Tensor,
        sentence_mask: Tensor,
        gaze: Tensor,
        has_gaze: Tensor,
        scale: Tensor,
    ) -> dict[str, Tensor]:
        """The configured EGMA terms. Batch-wide contrastive terms use features gathered over ranks."""
        lc = self.config.loss
        names = set(lc.losses)
        out: dict[str, Tensor] = {}
        gather = dist_utils.gather_with_local_grad
        if "clip" in names:
            terms = clip_loss(gather(glob), gather(report), scale)
            out["clip_loss"] = lc.clip_weight * terms.pop("clip_loss")
            out.update(terms)
        fine = "egf" in names or "filip" in names
        if fine:
            m_all = dist_utils.max_over_ranks(sentences.shape[1], sentences.device)
            gs = gather(dist_utils.pad_dim(sentences, 1, m_all))
            gm = gather(dist_utils.pad_dim(sentence_mask, 1, m_all, False))
            fil = filip_loss(gather(patches), gs, gm, scale, lc)
            filip = fil.pop("filip_loss")
            out.update(fil)
        if "egf" in names or "mlce" in names:
            ml = mlce_loss(patches, sentences, sentence_mask, gaze, has_gaze, scale, lc)
            mlce = ml.pop("mlce_loss")
            out.update(ml)
        if "egf" in names:
            out["egf_loss"] = lc.egf_weight * (filip + mlce)  # Eq. 5
            out["egf_filip"], out["egf_mlce"] = filip.detach(), mlce.detach()
        else:
            if "filip" in names:
                out["filip_loss"] = lc.egf_weight * filip
            if "mlce" in names:
                out["mlce_loss"] = lc.egf_weight * mlce
        if "egm" in names:
            terms = egm_loss(patches, sentences, sentence_mask, gaze, has_gaze, scale, lc)
            out["egm_loss"] = lc.egm_weight * terms.pop("egm_loss")  # total L = L_EGF + L_EGM
            out.update(terms)
        # Every ablation keeps the temperature in the graph (MLCE on cosines alone does not use it), so DDP
        # never meets an unused parameter.
        first = next(k for k in out if k.endswith("_loss"))
        out[first] = out[first] + 0.0 * scale
        return out

    def eclip_terms(
        self, batch: dict[str, Any], has_gaze: Tensor, glob: Tensor, report: Tensor, scale: Tensor
    ) -> dict[str, Tensor]:
        """eCLIP's loss as its reference trains it (ykumards/eCLIP, eclip_module.py training_step).

        Cold start (step < cold steps): (1 - w) CLIP(main) + w MSE(processor(x, ones), x), w =
        eclip_prime_weight (reference 0.3). Afterwards, with probability expert_probability(step) (1 when no
        step is passed), an expert batch is injected: eclip_expert_frac x B samples with heatmaps (half the
        batch, as the reference's second loader), their images processed and mixed with one lambda, appended
        to the main batch with their reports, and one CLIP loss taken over main + expert (copies of the same
        report excluded as negatives, eclip_mask_copies). Evaluation mode: CLIP over the main batch only.
        """
        lc = self.config.loss
        proc = self.heatmap_processor
        assert proc is not None
        image = batch["image"]
        step, total = batch.get("step"), batch.get("total_steps")
        curriculum = step is not None and total is not None
        zero = sum(p.sum() for p in proc.parameters()) * 0.0  # keeps the processor in the graph (DDP)
        if curriculum and self.training and ec.in_cold_start(int(step), int(total), lc):
            with torch.autocast(image.device.type, enabled=False):
                main = clip_loss(glob, report, scale)["clip_loss"]
            prime = ec.priming_loss(proc, image)
            return {
                "eclip_loss": (1.0 - lc.eclip_prime_weight) * lc.eclip_weight * main,
                "eclip_prime_loss": lc.eclip_prime_weight * prime + zero,
            }
        out: dict[str, Tensor] = {}
        img, txt, exclude = glob, report, None
        heat = batch.get("heatmap_image")
        if self.training:
            p = ec.expert_probability(int(step), int(total), lc) if curriculum else 1.0
            use, lam = ec.draw_expert_step(p, lc.eclip_mixup_alpha)
            idx = ec.expert_indices(has_gaze, lc.eclip_expert_frac) if use and heat is not None else None
            if idx is not None and len(idx):
                g_mixed = self._expert_features(image[idx], heat.to(image.device, image.dtype)[idx], lam)
                img, txt = torch.cat([glob, g_mixed]), torch.cat([report, report[idx]])
                exclude = ec.copy_mask(glob.shape[0], idx) if lc.eclip_mask_copies else None
                out["eclip_experts"] = torch.tensor(float(len(idx)))
                out["eclip_lambda"] = torch.tensor(lam)
        with torch.autocast(image.device.type, enabled=False):
            terms = clip_loss(img, txt, scale, exclude)
        out["eclip_loss"] = lc.eclip_weight * terms["clip_loss"] + zero
        return out

    def _expert_features(self, x: Tensor, heat: Tensor, lam: float) -> Tensor:
        """Global features (float32) of the mixed expert images lam * x + (1 - lam) * processor(x, heat)."""
        proc = self.heatmap_processor
        assert proc is not None
        mixed = ec.mixup(x, proc(x, heat), lam)
        _, g_mixed = self.encode_image(mixed)
        return g_mixed.float()
