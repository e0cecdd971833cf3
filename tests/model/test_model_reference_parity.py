"""LossConfig.reference_code() against numbers produced by running the public EGMA reference code
(reference_numbers.json, made from reference_cases.py's inputs; see docs/egma-fidelity.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from reference_cases import CASES, SCALE, reference_case

from radgaze.model import losses as L
from radgaze.model import losses_loop as R
from radgaze.model.config import LossConfig, ModelConfig

NUMBERS = json.loads((Path(__file__).parent / "reference_numbers.json").read_text())["cases"]
REF = LossConfig.reference_code()
# The reference's optional "sparc" term: the same mapping without gaze, threshold 2/7, weights 0.7 / 0.3.
SPARC = LossConfig.reference_code(egm_no_gaze_threshold=2 / 7, egm_no_gaze_weights=(0.7, 0.3))


def _terms(c: dict, cfg: LossConfig, has_gaze=None) -> dict[str, float]:
    sc = torch.tensor(SCALE, dtype=torch.float64)
    hg = c["has_gaze"] if has_gaze is None else has_gaze
    args = (c["patches"], c["sentences"], c["mask"], c["gaze"], hg, sc, cfg)
    filip = float(L.filip_loss(c["patches"], c["sentences"], c["mask"], sc, cfg)["filip_loss"])
    mlce = float(L.mlce_loss(*args)["mlce_loss"])
    egf = L.egf_loss(*args)["egf_loss"]
    return {"filip": filip, "mlce": mlce, "total": float(egf), "egm": float(L.egm_loss(*args)["egm_loss"])}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_preset_reproduces_the_reference_training_loss(name):
    c, want = reference_case(name), NUMBERS[name]
    got = _terms(c, REF)
    for term in ("filip", "mlce", "total"):
        assert got[term] == pytest.approx(want[term], abs=1e-12, rel=0), term
    assert got["egm"] == pytest.approx(want["egm_gaze_guided"], abs=1e-12, rel=0)
    sparc = _terms(c, SPARC, has_gaze=torch.zeros_like(c["has_gaze"]))["egm"]
    assert sparc == pytest.approx(want["sparc_no_gaze"], abs=1e-12, rel=0)


@pytest.mark.parametrize("name", list(CASES))
def test_loop_references_agree_with_the_reference_numbers(name):
    c, want = reference_case(name), NUMBERS[name]
    args = (c["patches"], c["sentences"], c["mask"], c["gaze"], c["has_gaze"], SCALE, REF)
    assert float(R.filip_loop(*args[:3], SCALE, REF)) == pytest.approx(want["filip"], abs=1e-12, rel=0)
    assert float(R.mlce_loop(*args)) == pytest.approx(want["mlce"], abs=1e-12, rel=0)
    assert float(R.egm_loop(*args)) == pytest.approx(want["egm_gaze_guided"], abs=1e-12, rel=0)


def test_each_reference_behaviour_matters():
    """Turning any one of the modelled reference behaviours back to the paper's moves the EGM off the
    reference numbers (so the fixture would catch a regression in each)."""
    c = reference_case("mixed")
    want = NUMBERS["mixed"]["egm_gaze_guided"]
    paper_side = {
        "egm_gaze_mix_patch": "mean",  # the precedence slip
        "egm_normalize_mapped": True,
        "egm_single_sentence": "zero",
        "egm_no_gaze_threshold": None,
        "egm_no_gaze_weights": None,
    }
    for key, value in paper_side.items():
        got = _terms(c, LossConfig.reference_code(**{key: value}))["egm"]
        assert abs(got - want) > 1e-6, key
    mlce = _terms(reference_case("empty_gaze_row"), LossConfig.reference_code(mlce_empty_rows_negative=False))
    assert abs(mlce["mlce"] - NUMBERS["empty_gaze_row"]["mlce"]) > 1e-6


def test_reference_preset_model_trains_filip_plus_mlce_only():
    from model_batches import make_model_batch

    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    d = ModelConfig.preset("tiny").to_dict()
    d["loss"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(REF).items()}
    model = EGMAModel(ModelConfig.from_dict(d))
    out = model(make_model_batch(model))
    assert {k for k in out if k.endswith("_loss")} == {"egf_loss"}
    assert float(out["egf_loss"].detach()) == pytest.approx(
        float(out["egf_filip"] + out["egf_mlce"]), rel=1e-6
    )
