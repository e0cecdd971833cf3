"""One truth for the attention agreement: ``radgaze review`` and ``radgaze eval`` compute the same sentences with
the same functions (radgaze.model.agreement) on the same grid, with the same shape rule, and say so in numbers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from replay_review_sessions import write_session


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    import torch

    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(4)
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), run / "checkpoints" / "last")
    return run


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    """Two files: one read with the reader's ellipses around the heart and the effusion, one without shapes."""
    folder = tmp_path_factory.mktemp("one_truth")
    write_session(folder / "a.h5", 2, prefix="a", annotated=True)
    write_session(folder / "b.h5", 1, prefix="b")
    return folder


def test_review_and_eval_write_the_same_sentence_table(run_dir, sessions, tmp_path, qapp, capsys):
    from radgaze.app.review import main as review_main
    from radgaze.training.eval_cmd import main as eval_main

    by_review, by_eval = tmp_path / "review.csv", tmp_path / "eval.csv"
    assert review_main([str(run_dir), str(sessions), "--export-csv", str(by_review)]) == 0
    capsys.readouterr()
    assert eval_main([str(run_dir), str(sessions), "--json", "--sentences-csv", str(by_eval)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert by_review.read_bytes() == by_eval.read_bytes()  # every sentence, every metric, to the last digit
    rows = list(csv.DictReader(by_eval.open()))[:-1]  # without the mean row
    assert len(rows) == 9 == result["n_attention_sentences"]  # 3 cases x 3 sentences
    hits = [r["ellipse_hit"] for r in rows]
    assert (
        sum(h != "" for h in hits) == 4
    )  # the heart's and the effusion's sentences of the two annotated cases
    # eval's headline numbers are the means of those very rows
    cc = np.mean([float(r["cc"]) for r in rows])
    nss = np.nanmean([float(r["nss"]) if r["nss"] else math.nan for r in rows])
    assert result["attention_cc"] == pytest.approx(cc, abs=1e-5)
    assert result["attention_nss"] == pytest.approx(nss, abs=1e-5)
    masks = result["pointing_game_masks"]
    assert masks["reader_ellipse"] == 4 and sum(masks.values()) == 9


def test_review_and_eval_rows_are_identical_floats(run_dir, sessions, qapp):
    """Through the functions (not only the CSV's 6 digits): review's compute_review and eval's attention_metrics."""
    from radgaze.app.review import compute_review
    from radgaze.model.checkpoint import load_checkpoint
    from radgaze.training import data as tdata
    from radgaze.training.config import DataConfig
    from radgaze.training.evaluate import attention_metrics

    model = load_checkpoint(run_dir / "checkpoints" / "last")
    _, review_rows, problems = compute_review(model, sorted(sessions.glob("*.h5")))
    assert not problems
    cfg = model.config
    idx = tdata.build_index(sessions)
    ds = tdata.SessionDataset(sessions, idx.cases, DataConfig(), image_size=int(cfg.image_size),
                              n_side=int(model.patch_grid), train=False, mean=cfg.image_mean, std=cfg.image_std)  # fmt: skip
    eval_rows: list = []
    attention_metrics(model, ds, "cpu", rows_out=eval_rows)
    key = lambda r: (r.session, r.case_id, r.sentence_index)  # noqa: E731
    assert sorted(map(key, review_rows)) == sorted(map(key, eval_rows))
    by_key = {key(r): r for r in eval_rows}
    for r in review_rows:
        e = by_key[key(r)]
        for m in ("cc", "nss", "kld", "sim", "auc_judd", "ellipse_hit", "ellipse_mass"):
            a, b = getattr(r, m), getattr(e, m)
            assert (math.isnan(a) and math.isnan(b)) or a == b, (key(r), m, a, b)


def test_eval_points_a_no_finding_sentence_elsewhere_as_review_leaves_its_hit_undefined(tmp_path):
    """One rule for which shapes score a sentence: review's Hit and eval's "reader_ellipse" target agree."""
    from radgaze.capture.base.records import CaseAnnotation, Shape
    from radgaze.capture.store.reader import SessionReader
    from radgaze.model.agreement import case_rows, pointing_target

    with SessionReader(write_session(tmp_path / "s.h5", 1)) as r:
        rec = r.case("case0")
    rec.annotation = CaseAnnotation(shapes=[
        Shape("ellipse", 160.0, 260.0, 240.0, 340.0, ("Enlarged cardiac silhouette",), 5),  # the heart's gaze
        Shape("ellipse", 70.0, 140.0, 150.0, 220.0, ("Other",), 3),  # where "the right lung is clear." looked
    ])  # fmt: skip
    heart, _, clear = case_rows(rec, rec.heatmaps.copy())
    kinds = [pointing_target(rec, i, rec.sentence_heatmap(i))[1] for i in range(3)]
    assert heart.ellipse_hit == 1.0 and kinds[0] == "reader_ellipse"
    assert math.isnan(clear.ellipse_hit) and kinds[2] != "reader_ellipse"
