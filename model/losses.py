"""EGMA losses, vectorized over the batch (Ma et al., "Eye-gaze Guided Multi-modal Alignment for Medical
Representation Learning", arXiv 2403.12416; equations as in the design notes, DESIGN.md).

Shapes: B samples, m sentence slots per report (padded; ``sentence_mask`` (B, m) marks the real ones),
n image patches, D embedding width. Features are L2-normalised, so dot products are the cosines of Eq. 1/3.
``logit_scale`` is the learned 1/tau (a 0-d tensor, already clamped by the model).

Each function returns a dict of named terms; keys ending in ``_loss`` are what the trainer sums, the others
are diagnostics. ``radgaze.model.losses_loop`` holds the slow per-sample loops these are tested against.

Where the paper and the public reference code differ, :class:`radgaze.model.config.LossConfig` selects:
direction weights (1/2, 1/2 vs 0.8/0.2), MLCE on cosines vs on scaled logits, FILIP padded-slot masking and
the text->image transpose (the reference forgets both), omega binarised or not, the EGM threshold (1/K vs
3/7), smoothing (0 vs 0.01), the gaze mix per side (add vs average-then-threshold vs the reference's
half-gaze slip), normalised mapped features, the one-sentence case and the no-gaze samples'
threshold/weights. ``LossConfig.reference_code()`` sets all of them as the reference has them; the list
with reasons is docs/egma-fidelity.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from radgaze.model.config import LossConfig

NEG_INF = float("-inf")


def clip_loss(
    image: Tensor, text: Tensor, logit_scale: Tensor, exclude: Tensor | None = None
) -> dict[str, Tensor]:
    """Symmetric InfoNCE on global features, image (B, D) and text (B, D) -> {"clip_loss"}.

    Eq. 1: s^{I2T}_{k,l} = cos(z^I_k, z^T_l), s^{T2I}_{k,l} = cos(z^T_k, z^I_l).
    Eq. 2: L^{I2T}_k = -1/b log softmax_l(s^{I2T}_{k,l} / tau)[k]; likewise T2I;
    loss = 1/2 (sum I2T + sum T2I).
    ``exclude`` (B, B) bool, False on the diagonal: pairs left out of both softmaxes (eCLIP's copies of the
    same report, see radgaze.model.egma).
    """
    logits = logit_scale * image @ text.T  # Eq. 1, scaled by 1/tau
    if exclude is not None:
        logits = logits.masked_fill(exclude, NEG_INF)
    labels = torch.arange(image.shape[0], device=image.device)
    i2t = F.cross_entropy(logits, labels)  # Eq. 2, image -> text (mean = the 1/b)
    t2i = F.cross_entropy(logits.T, labels)  # Eq. 2, text -> image
    return {"clip_loss": 0.5 * (i2t + t2i), "clip_i2t": i2t.detach(), "clip_t2i": t2i.detach()}


def all_pair_similarity(patches: Tensor, sentences: Tensor) -> Tensor:
    """Eq. 3 for every (text l, image k) pair: sim[l, j, k, i] = cos(S_l^j, P_k^i); shape (Bt, m, Bi, n)."""
    bt, m, d = sentences.shape
    bi, n, _ = patches.shape
    return (sentences.reshape(bt * m, d) @ patches.reshape(bi * n, d).T).reshape(bt, m, bi, n)


def filip_scores(sim: Tensor, sentence_mask: Tensor, *, mask_padded: bool = True) -> tuple[Tensor, Tensor]:
    """FILIP token-wise late interaction (Eq. 5's fine-grained logits) from sim (Bt, m, Bi, n).

    image->text s[k, l] = mean_i max_{j real in l} sim[l, j, k, i]     -> (Bi, Bt)
    text->image s[l, k] = mean_{j real in l} max_i sim[l, j, k, i]     -> (Bt, Bi)
    With ``mask_padded=False`` padded slots (zero vectors, similarity 0) join the image-side max, as in the
    reference code. A report without any real sentence scores 0.
    """
    valid = sentence_mask[:, :, None, None]  # (Bt, m, 1, 1)
    s2 = sim.masked_fill(~valid, NEG_INF) if mask_padded else sim.masked_fill(~valid, 0.0)
    best_sentence = s2.amax(dim=1)  # (Bt, Bi, n): max over sentences
    has_any = sentence_mask.any(dim=1)[:, None, None]
    best_sentence = torch.where(has_any, best_sentence, torch.zeros_like(best_sentence))
    i2t = best_sentence.mean(dim=2).T  # (Bi, Bt): mean over patches
    best_patch = sim.amax(dim=3)  # (Bt, m, Bi): max over patches
    w = sentence_mask.to(sim.dtype)[:, :, None]
    t2i = (best_patch * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)  # (Bt, Bi): mean over real sentences
    return i2t, t2i


def filip_loss(
    patches: Tensor, sentences: Tensor, sentence_mask: Tensor, logit_scale: Tensor, cfg: LossConfig
) -> dict[str, Tensor]:
    """Fine-grained contrastive part of Eq. 5: 1/2 (L^_I2T + L^_T2I) on FILIP scores -> {"filip_loss"}.

    patches (B, n, D), sentences (B, m, D), sentence_mask (B, m) bool; pair k of the batch is the positive.
    """
    sim = all_pair_similarity(patches, sentences)
    i2t, t2i = filip_scores(sim, sentence_mask, mask_padded=cfg.filip_mask_padded)
    labels = torch.arange(patches.shape[0], device=patches.device)
    l_i2t = F.cross_entropy(logit_scale * i2t, labels)  # Eq. 2 with FILIP logits, softmax over texts
    if cfg.filip_t2i_over_images:
        l_t2i = F.cross_entropy(logit_scale * t2i, labels)  # softmax over images (rows of t2i are texts)
    else:
        l_t2i = F.cross_entropy(logit_scale * t2i.T, labels)  # reference code: softmax over texts again
    return {"filip_loss": 0.5 * (l_i2t + l_t2i), "filip_i2t": l_i2t.detach(), "filip_t2i": l_t2i.detach()}


def mlce_rows(scores: Tensor, labels: Tensor, col_mask: Tensor) -> Tensor:
    """Multi-label CE per row (Eq. 4's mlce): log(1 + sum_neg e^s) + log(1 + sum_pos e^-s).

    scores (..., K), labels (..., K) bool, col_mask (..., K) bool (columns that exist) -> (...).
    """
    zero = torch.zeros_like(scores[..., :1])
    neg = scores.masked_fill(labels | ~col_mask, NEG_INF)
    pos = (-scores).masked_fill(~labels | ~col_mask, NEG_INF)
    return torch.logsumexp(torch.cat([zero, neg], -1), -1) + torch.logsumexp(torch.cat([zero, pos], -1), -1)


def gaze_rows(gaze: Tensor, has_gaze: Tensor, sentence_mask: Tensor, *, keep_empty: bool = False) -> Tensor:
    """(B, m) bool: real sentences of gaze samples whose heatmap row is not empty (all real sentences of
    gaze samples with ``keep_empty``, the reference code's MLCE)."""
    rows = sentence_mask & has_gaze[:, None]
    return rows if keep_empty else rows & (gaze > 0).any(dim=-1)


def gaze_labels(gaze: Tensor, min_frac: float = 0.0) -> Tensor:
    """GL (B, m, n) bool: GS > 0 (Eq. 4), or GS > min_frac * the row's maximum when min_frac > 0."""
    if min_frac <= 0:
        return gaze > 0
    return gaze > min_frac * gaze.amax(dim=-1, keepdim=True)


def mlce_loss(
    patches: Tensor,
    sentences: Tensor,
    sentence_mask: Tensor,
    gaze: Tensor,
    has_gaze: Tensor,
    logit_scale: Tensor,
    cfg: LossConfig,
) -> dict[str, Tensor]:
    """Eq. 4 summed over the samples that have gaze, divided by the batch size b (Eq. 5's 1/(2b) with the
    1/2 as direction weights) or, with ``mlce_per_gaze_sample``, by the number of those samples (reference
    code) -> {"mlce_loss"}.

    fL^{S2P}_k = mlce(x^{S2P}_k, GL_k) over the sentences with gaze (rows) and all patches;
    fL^{P2S}_k = mlce(x^{P2S}_k, GL_k^T) over all patches (rows) and the sentences with gaze.
    gaze (B, m, n) heatmaps on the patch grid, GL = :func:`gaze_labels`; has_gaze (B,) bool. Samples without gaze (or
    with no gazed sentence) add nothing; a batch without any gives 0 (still connected to the graph).
    """
    x = torch.einsum("bmd,bnd->bmn", sentences, patches)  # Eq. 3: x^{S2P}_k (m x n)
    if cfg.mlce_scaled_by_temperature:
        x = x * logit_scale  # reference code: mlce on logits / tau
    rows = gaze_rows(gaze, has_gaze, sentence_mask, keep_empty=cfg.mlce_empty_rows_negative)  # (B, m)
    gl = gaze_labels(gaze, cfg.mlce_label_min_frac)  # GL_k
    all_cols = torch.ones_like(gl)
    s2p = mlce_rows(x, gl, all_cols)  # Eq. 4 top, (B, m)
    p2s = mlce_rows(x.transpose(1, 2), gl.transpose(1, 2), rows[:, None, :].expand_as(gl.transpose(1, 2)))
    wr = rows.to(x.dtype)
    n_rows = wr.sum(1)
    sample = n_rows > 0  # samples that contribute
    f_s2p = (s2p * wr).sum(1) / n_rows.clamp_min(1.0)  # mean over gazed sentences
    f_p2s = p2s.mean(1)  # Eq. 4 bottom: mean over patches
    per_sample = cfg.mlce_weight_s2p * f_s2p + cfg.mlce_weight_p2s * f_p2s  # Eq. 5: 1/2 (fL^S2P + fL^P2S)
    per_sample = torch.where(sample, per_sample, torch.zeros_like(per_sample))
    n_gaze = sample.sum()
    denom = n_gaze.clamp_min(1) if cfg.mlce_per_gaze_sample else torch.tensor(x.shape[0])
    loss = per_sample.sum() / denom.to(x.dtype)
    return {"mlce_loss": loss, "mlce_gaze_samples": n_gaze.detach().to(x.dtype)}


def egf_loss(
    patches: Tensor,
    sentences: Tensor,
    sentence_mask: Tensor,
    gaze: Tensor,
    has_gaze: Tensor,
    logit_scale: Tensor,
    cfg: LossConfig,
    *,
    gathered: tuple[Tensor, Tensor, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Eq. 5: L_EGF = 1/(2b) sum_k (fL^S2P + fL^P2S) + 1/2 sum_k (L^_T2I + L^_I2T) -> {"egf_loss"}.

    ``gathered`` = (patches, sentences, sentence_mask) of the whole distributed batch for the contrastive
    part; the MLCE part is per sample and uses the local tensors.
    """
    gp, gs, gm = gathered if gathered is not None else (patches, sentences, sentence_mask)
    fil = filip_loss(gp, gs, gm, logit_scale, cfg)
    ml = mlce_loss(patches, sentences, sentence_mask, gaze, has_gaze, logit_scale, cfg)
    out = {"egf_loss": fil["filip_loss"] + ml["mlce_loss"]}
    out.update({f"egf_{k.removesuffix('_loss')}": v.detach() for k, v in {**fil, **ml}.items()})
    return out


def minmax_rows(x: Tensor, col_mask: Tensor) -> Tensor:
    """Row-wise min-max scaling over the real columns: x (..., K), col_mask (..., K) -> [0, 1], 0 on masked
    columns. A constant row scales to 1 (all columns tie for the max)."""
    lo = x.masked_fill(~col_mask, float("inf")).amin(-1, keepdim=True)
    hi = x.masked_fill(~col_mask, NEG_INF).amax(-1, keepdim=True)
    span = hi - lo
    scaled = torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), torch.ones_like(x))
    return torch.where(col_mask, scaled, torch.zeros_like(scaled))


def row_threshold(col_mask: Tensor, threshold: float | None) -> Tensor:
    """(..., 1) threshold per row: ``threshold``, or 1/(number of real columns) when None (SPARC)."""
    if threshold is None:
        return 1.0 / col_mask.sum(-1, keepdim=True).clamp_min(1).to(torch.float64)
    return torch.full(
        col_mask.shape[:-1] + (1,), float(threshold), dtype=torch.float64, device=col_mask.device
    )


def sparsify(w: Tensor, col_mask: Tensor, threshold: float | None | Tensor) -> Tensor:
    """Zero entries below the threshold (None: 1/number of real columns; a tensor: per row) and on masked
    columns."""
    t = threshold if isinstance(threshold, Tensor) else row_threshold(col_mask, threshold)
    keep = (w >= t.to(w.device, w.dtype)) & col_mask
    return torch.where(keep, w, torch.zeros_like(w))


def omega(x: Tensor, col_mask: Tensor, threshold: float | None | Tensor, *, binary: bool = False) -> Tensor:
    """Eq. 6's omega: row-wise min-max over the real columns, values below the threshold set to 0 (sparse),
    and with ``binary`` the survivors set to 1 (the paper's "sparse and binarize operations").

    x (..., K), col_mask (..., K) bool -> (..., K) in [0, 1], 0 on masked columns. A constant row scales to
    1, so every row keeps at least one nonzero weight. threshold None = 1/K with K the real columns (SPARC).
    """
    w = sparsify(minmax_rows(x, col_mask), col_mask, threshold)
    return (w > 0).to(w.dtype) if binary else w


def egm_weights(
    x: Tensor, gaze: Tensor, gazed: Tensor, col_mask: Tensor, cfg: LossConfig, mix: str | None = None
) -> Tensor:
    """Eq. 6: W = norm(omega(x) + GS) rows, for x (B, R, K) and its gaze GS (B, R, K) (max 1 per sentence).

    gazed (B,) bool: samples with gaze; the others use omega(x) alone with the no-gaze threshold
    (egm_no_gaze_threshold). ``mix`` (default cfg.egm_gaze_mix): "add" = omega(x) + GS (paper); "mean" =
    threshold((minmax(x) + GS) / 2) and "half_gaze" = threshold(minmax(x) + GS / 2) (the reference code's
    sentence and patch sides). norm makes each row sum to 1 over the real columns, after adding
    egm_smoothing to every real column.
    """
    mix = mix or cfg.egm_gaze_mix
    on = gazed[:, None, None]
    no_gaze_t = cfg.egm_threshold if cfg.egm_no_gaze_threshold is None else cfg.egm_no_gaze_threshold
    t = torch.where(on, row_threshold(col_mask, cfg.egm_threshold), row_threshold(col_mask, no_gaze_t))
    g = torch.where(on & col_mask, gaze, torch.zeros_like(gaze))
    if mix == "add":
        w = omega(x, col_mask, t, binary=cfg.egm_omega == "binary") + g  # Eq. 6
    else:
        mm = minmax_rows(x, col_mask)
        mixed = 0.5 * (mm + g) if mix == "mean" else mm + 0.5 * g
        w = sparsify(torch.where(on, mixed, mm), col_mask, t)
    w = torch.where(col_mask, w + cfg.egm_smoothing, torch.zeros_like(w))
    return w / w.sum(-1, keepdim=True).clamp_min(1e-12)  # norm: rows sum to 1


def _info_nce_within(mapped: Tensor, target: Tensor, valid: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE among the rows of each sample: mapped/target (B, R, D), valid (B, R) -> (B,).

    Row r of ``mapped`` should match row r of ``target`` against the other real rows of the same sample
    (SPARC-style local alignment); the two directions are averaged, then the mean over real rows.
    Samples with fewer than 2 real rows give 0 (a softmax over one candidate is constant).
    """
    logits = logit_scale * mapped @ target.transpose(1, 2)  # (B, R, R): row = mapped, column = target
    eye = torch.eye(logits.shape[1], dtype=torch.bool, device=logits.device)
    keep = (valid[:, :, None] & valid[:, None, :]) | eye  # the diagonal keeps padded rows finite
    logits = logits.masked_fill(~keep, NEG_INF)
    diag = logits.diagonal(dim1=1, dim2=2)
    m2t = torch.logsumexp(logits, -1) - diag  # mapped -> target, softmax over targets
    t2m = torch.logsumexp(logits, -2) - diag  # target -> mapped, softmax over mapped rows
    per_row = 0.5 * (m2t + t2m)
    w = valid.to(mapped.dtype)
    count = w.sum(1)
    out = (per_row * w).sum(1) / count.clamp_min(1.0)
    return torch.where(count >= 2, out, torch.zeros_like(out))


def _egm_mapped(
    x: Tensor,
    patches: Tensor,
    sentences: Tensor,
    sentence_mask: Tensor,
    gs: Tensor,
    gazed: Tensor,
    cfg: LossConfig,
) -> tuple[Tensor, Tensor]:
    """Eq. 6-7: (Cross_P (B, n, D), Cross_S (B, m, D)), L2-normalised when cfg.egm_normalize_mapped."""
    n = patches.shape[1]
    patch_cols = torch.ones_like(x, dtype=torch.bool)
    w_t2i = egm_weights(x, gs, gazed, patch_cols, cfg)  # Eq. 6, W^{T2I} (B, m, n)
    sent_cols = sentence_mask[:, None, :].expand(-1, n, -1)
    mix_p = cfg.egm_gaze_mix_patch or cfg.egm_gaze_mix
    w_i2t = egm_weights(x.transpose(1, 2), gs.transpose(1, 2), gazed, sent_cols, cfg, mix_p)  # W^{I2T}
    cross_p = w_i2t @ sentences  # Eq. 7: Cross_P^i = sum_j S^j W^{I2T}_{ij}  (B, n, D)
    cross_s = w_t2i @ patches  # Eq. 7: Cross_S^j = sum_i P^i W^{T2I}_{ji}  (B, m, D)
    if cfg.egm_normalize_mapped:  # Eq. 2 is on cosine similarities
        cross_p, cross_s = F.normalize(cross_p, dim=-1), F.normalize(cross_s, dim=-1)
    return cross_p, cross_s


def egm_loss(
    patches: Tensor,
    sentences: Tensor,
    sentence_mask: Tensor,
    gaze: Tensor,
    has_gaze: Tensor,
    logit_scale: Tensor,
    cfg: LossConfig,
) -> dict[str, Tensor]:
    """Eq. 6-8, eye-gaze guided cross-modality mapping -> {"egm_loss"}.

    W^{I2T} (n x m) = norm(omega(x^{P2S}) + GS^T), W^{T2I} (m x n) = norm(omega(x^{S2P}) + GS) (Eq. 6; the
    transposes are placed so the shapes agree - the paper prints them the other way round);
    Cross_P = W^{I2T} S (n x D), Cross_S = W^{T2I} P (m x D) (Eq. 7); each mapped set is contrasted with its
    target set within the sample (Eq. 2's InfoNCE) and L_EGM = 1/b sum_k (w_P L^P_k + w_S L^S_k) (Eq. 8).
    A sample with one sentence: see LossConfig.egm_single_sentence ("zero": both sides 0).
    """
    x = torch.einsum("bmd,bnd->bmn", sentences, patches)  # Eq. 3: x^{S2P} (B, m, n)
    gazed = has_gaze.to(torch.bool)
    gs = gaze / gaze.amax(-1, keepdim=True).clamp_min(1e-12)  # GS per sentence, max 1
    gs = gs * sentence_mask[..., None].to(gs.dtype)
    cross_p, cross_s = _egm_mapped(x, patches, sentences, sentence_mask, gs, gazed, cfg)
    n_sent = sentence_mask.sum(1)
    all_patches = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
    l_p = _info_nce_within(cross_p, patches, all_patches, logit_scale)  # image mapping loss
    l_p = torch.where(n_sent >= 2, l_p, torch.zeros_like(l_p))  # m = 1: every Cross_P^i is the one sentence
    l_s = _info_nce_within(cross_s, sentences, sentence_mask, logit_scale)  # text mapping loss
    if cfg.egm_single_sentence == "mse":  # reference code: summed squared error when m = 1
        sq = ((cross_s - sentences) ** 2).sum(-1)[:, 0]
        l_s = torch.where(n_sent == 1, sq, l_s)
    wp, ws = cfg.egm_weight_patch, cfg.egm_weight_sentence
    nwp, nws = cfg.egm_no_gaze_weights or (wp, ws)
    w_p = torch.full_like(l_p, nwp).masked_fill(gazed, wp)
    w_s = torch.full_like(l_s, nws).masked_fill(gazed, ws)
    loss = (w_p * l_p + w_s * l_s).mean()  # Eq. 8
    return {"egm_loss": loss, "egm_patch": l_p.mean().detach(), "egm_sentence": l_s.mean().detach()}
