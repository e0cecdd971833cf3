"""Batch builders shared by the model tests (imported by name: tests/model is on sys.path)."""

from __future__ import annotations

import torch

REPORTS = [
    ["There is a small left pleural effusion.", "Heart size is normal."],
    ["No pneumothorax."],
    ["Mild pulmonary edema.", "Bibasilar atelectasis.", "No acute process.", "Lungs are clear otherwise."],
]


def make_model_batch(model, reports=REPORTS, has_gaze=(True, False, True), seed: int = 0) -> dict:
    """A batch in the contract's layout: images, tokens, gaze on the patch grid (rows sum to 1)."""
    g = torch.Generator().manual_seed(seed)
    tok = model.tokenize(reports)
    b, m = tok["sentence_mask"].shape
    n = model.patch_grid**2
    s = model.config.image_size
    raw = torch.rand(b, m, n, generator=g) * (torch.rand(b, m, n, generator=g) < 0.3)
    raw[:, :, 0] += 1e-3  # every real sentence looked somewhere
    gaze = raw / raw.sum(-1, keepdim=True) * tok["sentence_mask"][..., None]
    return {
        "image": torch.randn(b, 3, s, s, generator=g),
        **tok,
        "gaze": gaze,
        "has_gaze": torch.tensor(has_gaze, dtype=torch.bool),
    }
