"""One benchmark report for every ``radgaze bench``: figures, goals with ratios, the machine's load beside them."""

from __future__ import annotations

import json

import pytest

from radgaze.capture.base.report import bench_result, goal_row, goal_table, text_lines


def test_goal_rows_give_the_ratio_and_whether_the_goal_is_met():
    assert goal_row(2.5, "<", 5.0) == {"goal": "< 5.0", "value": 2.5, "ratio": 0.5, "met": True}
    assert goal_row(500.0, ">=", 1000.0) == {"goal": ">= 1000.0", "value": 500.0, "ratio": 0.5, "met": False}
    assert goal_row(3, "==", 0) == {"goal": "== 0", "value": 3, "ratio": None, "met": False}
    assert goal_row(None, "<=", 16.0)["met"] is None and goal_row(float("nan"), "<=", 16.0)["value"] is None
    with pytest.raises(ValueError, match="goal operator must be one of"):
        goal_row(1.0, "=<", 2.0)
    table = goal_table({"a_ms": 4.0}, {"a_ms": ("<=", 16.0), "b_per_s": (">=", 10.0)})
    assert list(table) == ["a_ms", "b_per_s"] and table["a_ms"]["ratio"] == 0.25
    assert table["b_per_s"]["met"] is None  # not among the figures: not measured, never "met"


def test_the_result_carries_goals_machine_and_notes_and_prints_them():
    result = bench_result({"a_ms": 20.0, "n": 3}, {"a_ms": ("<=", 16.0)}, {"b": "no GPU: not measured"})
    assert result["a_ms"] == 20.0 and result["goals"]["a_ms"]["met"] is False
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["load_average_1min"] >= 0
    text = "\n".join(text_lines(result))
    assert "goal <= 16.0" in text and "ratio    1.25  NOT met" in text
    assert "load average" in text and "note: b: no GPU: not measured" in text
    assert json.loads(json.dumps(result)) == result
    with pytest.raises(ValueError, match="reserved"):
        bench_result({"goals": 1})


def test_store_bench_reports_in_the_shared_form(capsys):
    from radgaze.capture.bench.store import main

    assert main(["--minutes", "0.05", "--gaze-hz", "250", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["with_audio"]["file_mb_per_min"] > out["gaze_only"]["file_mb_per_min"] > 0
    goal = out["goals"]["with_audio_file_mb_per_min"]
    assert goal["goal"] == "<= 2.5" and goal["value"] == out["with_audio"]["file_mb_per_min"]
    assert goal["met"] is (goal["value"] <= 2.5) and "load_average_1min" in out["machine"]
    assert main(["--minutes", "0.05", "--gaze-hz", "250"]) == 0
    assert "load average" in capsys.readouterr().out


def test_model_and_train_benches_report_in_the_shared_form(capsys):
    import torch

    from radgaze.model.bench import main as model_main
    from radgaze.training.bench import main as train_main

    args = [
        "--json",
        "--batch",
        "4",
        "--patches",
        "4",
        "--max-sentences",
        "2",
        "--dim",
        "8",
        "--repeats",
        "2",
    ]
    threads = torch.get_num_threads()
    try:
        assert model_main([*args, "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = json.loads(capsys.readouterr().out)
    assert set(out["goals"]) == {"loss_speedup_vs_loop", "mfu"}
    assert out["goals"]["loss_speedup_vs_loop"]["value"] == out["loss_speedup_vs_loop"]
    assert "load_average_1min" in out["machine"]
    if torch.cuda.is_available():
        return  # the train benchmark would run on the GPU; its GPU run is checked by hand
    assert train_main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["measured"] is False
        and out["goals"]["mfu"]["met"] is None
        and "not measured" in out["notes"]["mfu"]
    )
