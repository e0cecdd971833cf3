"""Fixed float64 inputs on which the public EGMA reference code (MoMarky/EGMA, egma/modeling_egma.py,
class SPARC_FILIP_PartGaze_Model) was run once, outside this repository, to produce the numbers in
reference_numbers.json (see docs/egma-fidelity.md, "How the fixtures were made"). Only those numbers are
kept here, never that code. Imported by name: tests/model is on sys.path.

The reference takes sentence features flattened over the batch with a per-image count, and per-sentence
heatmaps scaled to a peak of 1 (its 8-bit heatmap images); radgaze takes (B, m, D) padded features, a
sentence mask and gaze rows that sum to 1 (the capture pipeline's layout, rescaled to a peak of 1 inside
the EGM loss). :func:`reference_case` builds both views of the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCALE = 1.0 / 0.07  # logit scale = exp(log(1/0.07)), inside the reference's clamp [0, 4.6052]

# name -> (seed, sentences per report, has gaze, (sample, sentence) rows with no gaze although the sample has)
CASES: dict[str, tuple[int, list[int], list[bool], list[tuple[int, int]]]] = {
    "mixed": (11, [3, 1, 2, 4, 3, 2], [True, True, False, True, False, True], []),
    "multi_sentence": (12, [2, 3, 4, 2, 3], [True, True, True, False, True], []),
    "empty_gaze_row": (13, [3, 2, 4, 2], [True, True, False, True], [(0, 1), (2, 0)]),
}


def reference_case(name: str, n: int = 49, d: int = 512) -> dict:
    """The fixed inputs of case ``name`` (float64), in radgaze's layout and in the reference's."""
    seed, n_sent, has_gaze, empty = CASES[name]
    g = torch.Generator().manual_seed(seed)
    b, m = len(n_sent), max(n_sent)
    mask = torch.arange(m)[None] < torch.tensor(n_sent)[:, None]
    patches = F.normalize(torch.randn(b, n, d, generator=g, dtype=torch.float64), dim=-1)
    sentences = F.normalize(torch.randn(b, m, d, generator=g, dtype=torch.float64), dim=-1) * mask[..., None]
    hm = torch.rand(b, m, n, generator=g, dtype=torch.float64)
    hm = hm * (torch.rand(b, m, n, generator=g, dtype=torch.float64) < 0.35)
    hm[:, :, 0] += 0.05  # every row looked somewhere before the chosen rows are emptied
    hm = hm / hm.amax(-1, keepdim=True)  # peak 1 per sentence, as the reference's heatmap images
    for k, j in empty:
        hm[k, j] = 0.0
    hm = hm * mask[..., None]
    gaze = hm / hm.sum(-1, keepdim=True).clamp_min(1e-300)  # radgaze: rows sum to 1
    return {
        "patches": patches,
        "sentences": sentences,
        "mask": mask,
        "gaze": gaze,
        "has_gaze": torch.tensor(has_gaze),
        # the reference's layout
        "ref_sentences": sentences[mask],
        "ref_heatmaps": hm[mask].reshape(-1, 1, int(n**0.5), int(n**0.5)),
        "ref_n_sent": list(n_sent),
        "ref_gaze_condition": [int(h) for h in has_gaze],
    }
