"""``radgaze experiment learning-curve``: nested training sets, epochs for a step budget, the table and the
plot, and the whole command end to end on a few cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radgaze.training import learning_curve as lc

REPO = Path(__file__).resolve().parents[2]


def test_epochs_for_a_step_budget():
    assert lc.epochs_for(64, 8, 1, 100) == 13  # 8 steps an epoch
    assert lc.epochs_for(1024, 8, 1, 100) == 1
    assert lc.epochs_for(1024, 8, 3, 0) == 3
    assert lc.epochs_for(5, 8, 1, 10) == 10  # one (short) step an epoch


def test_training_subsets_are_nested_and_hold_whole_cases(tmp_path: Path):
    pool, test = lc.make_pool(tmp_path, 16, 8, 96, seed=3)
    small = lc.subset_folder(pool, tmp_path, 8)
    large = lc.subset_folder(pool, tmp_path, 16)
    from radgaze.capture.store.reader import SessionReader, list_sessions

    def case_ids(folder: Path) -> list[str]:
        out = []
        for f in list_sessions(folder):
            with SessionReader(f) as r:
                out += r.case_ids
                for c in r.cases():
                    assert r.image_path(c).is_file()  # the image came along
                    assert len(c.labels) == 1 or c.labels in ([], ["normal"])  # single-finding studies
        return out

    assert len(case_ids(small)) == 8 and case_ids(large)[:8] == case_ids(small)
    assert not set(case_ids(test)) & set(case_ids(large)), "the held-out set shares no case"
    with pytest.raises(Exception, match="multiples"):
        lc.subset_folder(pool, tmp_path, 12)
    # a stopped curve is tabulated from its log, baselines from the held-out labels
    log = tmp_path / "runs.jsonl"
    runs = [
        {"n_cases": 8, "variant": "CLIP only", "seed": s, "zero_shot_accuracy": a}
        for s, a in ((0, 0.2), (1, 0.4))
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in runs))
    res = lc.result_from_log(log, test, lc.PRESETS["cpu"])
    (row,) = res["rows"]
    assert row["n_seeds"] == 2 and row["metrics"]["zero_shot_accuracy"]["mean"] == pytest.approx(0.3)
    assert res["n_test_cases"] == 8 and res["baselines"]["report_retrieval_chance"] == pytest.approx(1 / 8)
    assert 1 / 6 <= res["baselines"]["zero_shot_majority_class"] <= 1.0


def _fake_result() -> dict:
    rows = []
    for n in (64, 256):
        for k, v in enumerate(lc.CURVE_VARIANTS):
            m = {
                key: {"mean": 0.1 * k + n / 1000, "sd": 0.01, "values": [0, 0, 0]}
                for key, _ in lc.CURVE_METRICS
            }
            rows.append({"n_cases": n, "variant": v.name, "epochs": 2, "metrics": m})
    base = {
        "zero_shot_majority_class": 0.2,
        "zero_shot_chance": 1 / 6,
        "t2i_p_at_1_chance": 1 / 6,
        "report_retrieval_chance": 1 / 128,
        "pointing_game_chance": 0.05,
        "attention_cc_chance": 0.0,
    }
    preset = lc.PRESETS["cpu"].__dict__
    return {"rows": rows, "baselines": base, "preset": preset, "n_seeds": 3, "n_test_cases": 128}


def test_table_has_a_row_per_size_and_variant_and_the_baselines():
    res = _fake_result()
    table = lc.format_curve_table(res["rows"], res["baselines"])
    lines = table.splitlines()
    assert len(lines) == 2 + 6 + 1
    assert lines[2].startswith("| 64 | CLIP only | 2 | 3 | 0.064 ± 0.010")
    assert "I2T P@1" in lines[0] and "no learning" in lines[-1] and "0.200 (majority)" in lines[-1]


def test_plot_is_a_png_with_a_panel_per_metric(tmp_path: Path):
    png = lc.plot_curve(_fake_result(), tmp_path / "curve.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 800 and im.size[1] > 400
        pixels = np.asarray(im.convert("RGB"))
    reds = np.sum((pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90))
    assert reds > 200, "the EGF+EGM line is drawn"
    assert png.stat().st_size < 200_000


@pytest.mark.slow
def test_learning_curve_command_end_to_end(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    png = tmp_path / "lc.png"
    proc = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "experiment", "learning-curve", "--sizes", "8,16",
         "--test-cases", "12", "--seeds", "1", "--min-steps", "1", "--image-size", "112", "--png", str(png),
         "--work", str(tmp_path / "work"), "--log", str(tmp_path / "runs.jsonl"), "--json"],
        capture_output=True, text=True, timeout=900, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert [(r["n_cases"], r["variant"]) for r in res["rows"]] == [
        (n, v.name) for n in (8, 16) for v in lc.CURVE_VARIANTS
    ]
    gaze10 = [r for r in res["rows"] if r["variant"] == "EGF+EGM gaze 10%"]
    assert [r["n_with_gaze"] for r in gaze10] == [1, 2]  # 10 % of 8 and 16 cases, at least one
    for r in res["rows"]:
        acc = r["metrics"]["zero_shot_accuracy"]["mean"]
        assert acc is not None and 0.0 <= acc <= 1.0
    assert res["baselines"]["report_retrieval_chance"] == pytest.approx(1 / 12)
    assert png.is_file() and len((tmp_path / "runs.jsonl").read_text().splitlines()) == 6


def test_cuda_preset_refuses_without_a_gpu(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from radgaze.capture.base.errors import ConfigError
    from radgaze.training.experiment_cmd import main

    with pytest.raises(ConfigError, match="CUDA"):
        main(["learning-curve", "--device", "cuda", "--work", str(tmp_path)])
    assert lc.PRESETS["cuda"].sizes[-1] == 3700 and lc.PRESETS["cuda"].config == "paper"


def test_a_run_trains_on_every_case_of_its_subset_with_the_variants_losses():
    variant = lc.CURVE_VARIANTS[2]  # EGF+EGM gaze 10 %
    cfg = lc.run_config(variant, 4, 64, lc.PRESETS["cpu"], [])
    assert cfg.data.val_fraction == 0  # no fifth of the subset held back for validation
    assert cfg.model["loss"]["losses"] == ["clip", "egf", "egm"] and cfg.data.gaze_ratio == 0.1
    assert cfg.seed == 4 and cfg.model["image_size"] == lc.PRESETS["cpu"].image_size
    assert cfg.batch_size == lc.PRESETS["cpu"].batch_size()
    steps = cfg.epochs * (64 // cfg.batch_size)
    assert steps >= lc.PRESETS["cpu"].min_steps
    assert lc.run_config(variant, 4, 64, lc.PRESETS["cpu"], ["optim.lr=0.01"]).optim.lr == 0.01  # --set last


def test_clip_loss_at_the_start_and_the_end_of_a_run(tmp_path: Path):
    lines = [{"step": i + 1, "clip_loss": 2.0 if i < 10 else 1.0, "egm_loss": 5.0} for i in range(30)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert lc.clip_loss_start_end(tmp_path / "metrics.jsonl") == {
        "clip_loss_first": 2.0,
        "clip_loss_last": 1.0,
    }
    (tmp_path / "m2.jsonl").write_text(json.dumps({"step": 1, "egm_loss": 1.0}) + "\n")
    assert lc.clip_loss_start_end(tmp_path / "m2.jsonl")["clip_loss_first"] is None
    assert lc.clip_loss_start_end(tmp_path / "absent.jsonl")["clip_loss_last"] is None


def test_report_prompts_are_embedded_as_reports_and_scored_as_the_best_prompt():
    import torch

    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel
    from radgaze.model.zeroshot import report_embeddings
    from radgaze.training.evaluate import classification_metrics

    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    cfg.image_size = 64
    model = EGMAModel(cfg).eval()
    images = torch.randn(12, 3, 64, 64)
    labels = ["normal", "nodule", "pneumothorax"] * 4
    prompts = lc.class_prompts()
    assert sorted(prompts) == sorted(["normal", "nodule", "pneumothorax", "consolidation", "pleural_effusion",
                                      "cardiomegaly"]) and all(len(v) == lc.PROMPTS_PER_CLASS for v in prompts.values())  # fmt: skip
    res = classification_metrics(model, images, labels, "cpu", prompts)
    classes = res["classes"]
    with torch.no_grad():
        img = torch.nn.functional.normalize(model.encode_image(images)[1], dim=-1)
        scores = torch.stack(
            [(img @ report_embeddings(model, prompts[c]).T).max(1).values for c in classes], 1
        )
    expected = np.mean(scores.argmax(1).numpy() == np.array([classes.index(x) for x in labels]))
    assert res["zero_shot_accuracy"] == pytest.approx(expected)
    assert res["prompts_per_class"] == {c: lc.PROMPTS_PER_CLASS for c in classes}
    default = classification_metrics(model, images, labels, "cpu")  # sentence prompts: another text set
    assert default["prompts_per_class"] == {c: 5 for c in classes}


def test_a_single_seed_row_shows_its_value_without_an_sd():
    res = _fake_result()
    res["rows"][0]["n_seeds"] = 1
    lines = lc.format_curve_table(res["rows"], res["baselines"]).splitlines()
    assert lines[2].startswith("| 64 | CLIP only | 2 | 1 | 0.064 | ") and "±" not in lines[2]
    assert "0.164 ± 0.010" in lines[3]
