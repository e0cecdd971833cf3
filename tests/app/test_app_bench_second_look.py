"""``radgaze bench second-look`` runs the real record window and worker and reports in the common format
(figures, goals, machine); the figures themselves are never asserted (benchmarks/README.md)."""

from __future__ import annotations

import json


def test_the_second_look_bench_reports_space_to_overlay_with_its_goal_and_the_load(capsys):
    from radgaze.app.bench_second_look import main

    assert main(["--repeats", "2", "--mark-cases", "1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["repeats"] == 2 and got["space_to_overlay_p95_ms"] > 0  # one overlay per Space
    assert got["goals"]["space_to_overlay_p95_ms"]["goal"] == "<= 100.0"
    assert "load_average_1min" in got["machine"]
    assert got["exact_marks_complete"].endswith("/2") and got["exact_marks_search"].endswith("/1")
    assert 0.0 <= got["false_mark_rate_complete"] <= 1.0
