"""Prompt data (EGMA appendix Tables V-VI), zero-shot class scores, retrieval P@k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radgaze.capture.base.errors import ConfigError
from radgaze.model.zeroshot import load_prompts, retrieval_precision_at_k, text_embeddings, zero_shot_scores


def test_chexpert_8x200_queries_are_the_papers():
    p = load_prompts("chexpert8x200")
    assert list(p) == [
        "No Finding", "Cardiomegaly", "Edema", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
        "Fracture",
    ]  # fmt: skip
    assert all(len(v) == 5 for v in p.values())
    assert p["Pneumothorax"][4] == "Pleural air is present."
    assert p["Fracture"][3] == "A communuted displaced fracture is present."  # spelling as published
    assert load_prompts("rsna") == {k: p[k] for k in ("No Finding", "Pneumonia")}
    assert list(load_prompts("siim")) == ["No Finding", "Pneumothorax"]


def test_chexpert_5x200_combines_severity_subtype_location():
    """GLoRIA's radiologist set (gloria/constants.py CHEXPERT_CLASS_PROMPTS, carried unchanged by MedCLIP and
    the EGMA reference); EGMA Table V prints examples of three of its classes."""
    p = load_prompts("chexpert5x200")
    assert list(p) == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    assert len(p["Atelectasis"]) == 3 * 7 * 10
    assert "mild linear atelectasis at the lung bases" in p["Atelectasis"]
    assert "subsegmental atelectasis at the mid lung zone" in p["Atelectasis"]  # empty severity skipped
    # Table V's examples are all there (severity x subtype x location, as printed)
    table_v = {
        "Atelectasis": (["mild", "minimal"], ["bandlike atelectasis"], ["at the lung bases"]),
        "Consolidation": (["apperance of"], ["partial consolidation"], ["at the left upper lobe"]),
    }
    for c, (sev, sub, loc) in table_v.items():
        assert all(f"{a} {b} {d}" in p[c] for a in sev for b in sub for d in loc)
    # Pleural Effusion composes severity, location, subtype (its dict order in the reference)
    assert "small left bilateral pleural effusion" in p["Pleural Effusion"]
    assert len(p["Pleural Effusion"]) == 6 * 3 * 2  # "bilateral pleural effusion" is listed twice
    assert len(p["Cardiomegaly"]) == 15 and "persistent severe cardiomegaly" in p["Cardiomegaly"]
    assert (
        "presistent pulmonary edema" in p["Edema"] and "decreased pulmonary interstitial edema" in p["Edema"]
    )
    assert len(p["Edema"]) == 6 * 3 and "edema" not in p["Edema"]
    assert all(len(set(v)) == len(v) for v in p.values())
    with pytest.raises(ConfigError, match="allowed are"):
        load_prompts("mimic")


def test_every_prompt_set_cites_its_source():
    import json

    from radgaze.assets import asset_text

    five = json.loads(asset_text("prompts", "chexpert5x200.json"))
    assert "marshuang80/gloria" in five["description"] and "Table V" in five["description"]
    assert all(v.get("source") for v in five["classes"].values())
    eight = json.loads(asset_text("prompts", "chexpert8x200.json"))
    assert "Table VI" in eight["description"]


def test_zero_shot_scores_are_max_over_prompts(tiny_model):
    prompts = {"a": ["Small left pleural effusion.", "Heart size is normal."], "b": ["No pneumothorax."]}
    s = tiny_model.config.image_size
    images = torch.randn(3, 3, s, s, generator=torch.Generator().manual_seed(0))
    scores = zero_shot_scores(tiny_model, images, prompts)
    assert scores.shape == (3, 2)
    with torch.no_grad():
        img = tiny_model.encode_image(images)[1]
    manual_a = (img @ text_embeddings(tiny_model, prompts["a"]).T).max(1).values
    np.testing.assert_allclose(scores[:, 0], manual_a.numpy(), rtol=1e-5, atol=1e-6)
    assert (scores <= 1.0 + 1e-6).all() and (scores >= -1.0 - 1e-6).all()


def test_retrieval_precision_known_answer():
    # 2 images (classes 0, 1), 4 texts (classes 0, 0, 1, 1)
    sim = np.array([[0.9, 0.1, 0.8, 0.0], [0.2, 0.3, 0.1, 0.7]])
    out = retrieval_precision_at_k(sim, [0, 1], [0, 0, 1, 1], ks=(1, 2))
    # image 0 ranks texts 0 (hit), 2 (miss); image 1 ranks 3 (hit), 1 (miss)
    assert out["i2t_p@1"] == 1.0 and out["i2t_p@2"] == 0.5
    # text queries: t0 -> img0 (hit); t1 -> img1 (miss); t2 -> img0 (miss); t3 -> img1 (hit)
    assert out["t2i_p@1"] == 0.5 and out["t2i_p@2"] == 0.5  # k = 2 covers both images: half relevant
    with pytest.raises(ValueError, match="expected shape"):
        retrieval_precision_at_k(sim.T, [0, 1], [0, 0, 1, 1])
