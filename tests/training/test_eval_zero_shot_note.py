"""``radgaze eval`` says why zero-shot shows "–" (issue 23, item 11): no two classes of single-label cases."""

from __future__ import annotations

from radgaze.training.evaluate import classification_metrics, result_table


def test_zero_shot_dash_says_why():
    labels = ["Pneumothorax", None, None, "Pneumothorax"]  # one class; two cases with several labels
    out = classification_metrics(None, None, labels, "cpu")  # refused before any model is needed
    assert out["zero_shot_accuracy"] is None
    note = out["zero_shot_note"]
    assert "at least 2 classes" in note and "2 of 4 case(s) have one label (1 class(es))" in note
    table = result_table({"n_cases": 4, **out})
    assert f"zero_shot_note: {note}" in table and "zero_shot_accuracy" in table
