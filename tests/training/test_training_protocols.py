"""``radgaze eval RUN --images ...``: the paper's zero-shot, retrieval and linear-probe protocols
(radgaze.training.protocols) on small labelled sets made from the real radiographs in ../shared/data.

The model is the tiny preset (random weights): these tests check that each protocol computes what it says
on real image files (metrics recomputed independently, broken rows counted), not that a random model is good.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radgaze.training import protocols as P
from radgaze.training.eval_cmd import images_parser

FIVE = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), run / "checkpoints" / "last")
    return run


@pytest.fixture(scope="module")
def cxr(shared_data) -> list[Path]:
    files = sorted((shared_data / "cxr").glob("*.png"))
    if len(files) < 20:
        pytest.skip(f"expected >= 20 radiographs in {shared_data / 'cxr'}, found {len(files)}")
    return files


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _five_by_n_csv(tmp_path: Path, cxr: list[Path]) -> Path:
    """Real radiographs labelled round-robin with the CheXpert 5x200 classes + 4 broken rows."""
    bad = tmp_path / "truncated.png"
    bad.write_bytes(cxr[0].read_bytes()[:300])  # a real PNG cut short: unreadable
    rows = [[str(f), FIVE[i % 5]] for i, f in enumerate(cxr)]
    rows += [
        [str(tmp_path / "absent.png"), "Edema"],
        [str(cxr[1]), "Fracture"],
        ["", "Edema"],
        [bad.name, "Edema"],
    ]
    return _write_csv(tmp_path / "set.csv", ["path", "label"], rows)


def _brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pairwise_counting_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        s = rng.integers(0, 6, 40).astype(float)  # many ties
        if 0 < y.sum() < len(y):
            assert P.roc_auc(y, s) == pytest.approx(_brute_auc(y, s))
    assert P.roc_auc(np.ones(5), np.arange(5.0)) is None


def test_zeroshot_on_real_radiographs_counts_broken_rows_and_scores_as_the_model_does(ckpt, cxr, tmp_path):
    from radgaze.model.checkpoint import load_checkpoint
    from radgaze.model.zeroshot import load_prompts, zero_shot_scores

    res = P.evaluate_images(ckpt, _five_by_n_csv(tmp_path, cxr), "zeroshot")
    assert res["prompts"] == "chexpert5x200" and res["classes"] == FIVE
    assert res["n_images"] == len(cxr) and res["n_broken"] == 4
    reasons = " | ".join(b["reason"] for b in res["broken"])
    for want in ("file not found", "unknown label 'Fracture'", "empty path", "unreadable image"):
        assert want in reasons
    # independent recomputation: radgaze.model.zeroshot's class scores on the same inputs
    model = load_checkpoint(ckpt / "checkpoints" / "last")
    cfg = model.config
    images = torch.stack([P._model_input(f, cfg.image_size, cfg.image_mean, cfg.image_std) for f in cxr])
    scores = zero_shot_scores(model, images, load_prompts("chexpert5x200"))
    y = np.array([i % 5 for i in range(len(cxr))])
    r = res["results"]
    assert r["accuracy"] == pytest.approx(float(np.mean(scores.argmax(1) == y)), abs=1e-9)
    for c, name in enumerate(FIVE):
        assert r["auc_per_class"][name] == pytest.approx(
            _brute_auc((y == c).astype(int), scores[:, c]), abs=1e-5
        )
    assert r["auc"] == pytest.approx(np.mean(list(r["auc_per_class"].values())))
    assert 0.0 <= r["macro_f1"] <= 1.0


def test_folder_per_class_and_the_cli_table_and_json(ckpt, cxr, tmp_path, capsys):
    from radgaze.training.eval_cmd import main

    root = tmp_path / "five"
    for i, f in enumerate(cxr[:15]):
        d = root / FIVE[i % 5]
        d.mkdir(parents=True, exist_ok=True)
        (d / f.name).symlink_to(f)
    (root / "Fracture").mkdir()
    (root / "Fracture" / cxr[15].name).symlink_to(cxr[15])
    assert main([str(ckpt), "--images", str(root), "--protocol", "zeroshot", "--json", "--no-bar"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_images"] == 15 and res["n_broken"] == 1
    assert res["broken"][0]["row"] == "folder Fracture"
    assert main([str(ckpt), "--images", str(root), "--no-bar"]) == 0
    table = capsys.readouterr().out
    assert "accuracy" in table and "macro F1" in table and "AUC" in table
    assert "broken rows: 1" in table and "unknown label 'Fracture'" in table


def test_retrieval_with_the_8x200_queries_follows_the_relevance_rule(ckpt, cxr, tmp_path):
    from radgaze.model.zeroshot import load_prompts

    eight = list(load_prompts("chexpert8x200"))
    csv_path = _write_csv(
        tmp_path / "r.csv", ["path", "label"], [[str(f), eight[i % 8]] for i, f in enumerate(cxr)]
    )
    res = P.evaluate_images(ckpt, csv_path, "retrieval")
    r = res["results"]
    assert res["prompts"] == "chexpert8x200" and r["n_queries"] == 40
    assert r["i2t_p@10_max"] == pytest.approx(0.5) and r["i2t_p@1_max"] == 1.0
    for k in (1, 5, 10):
        assert 0.0 <= r[f"i2t_p@{k}"] <= r[f"i2t_p@{k}_max"] + 1e-12
    # text->image P@1 recomputed by hand: is each query's nearest image of the query's class?
    from radgaze.model.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt / "checkpoints" / "last")
    image_set = P.read_image_set(csv_path, eight)
    enc = P.encode_images(model, image_set, device="cpu")
    text, owner = P.prompt_embeddings(model, load_prompts("chexpert8x200"))
    nearest = (text @ enc.glob.T).argmax(1).numpy()
    labels = np.array([it.targets[0] for it in enc.items])
    assert r["t2i_p@1"] == pytest.approx(float(np.mean(labels[nearest] == owner)))


def test_linear_probe_on_the_real_projection_labels_reports_fractions_and_seeds(ckpt, shared_data, tmp_path):
    meta = list(csv.DictReader(open(shared_data / "cxr" / "hannover_metadata.csv")))
    rows = []
    for i, m in enumerate(meta):  # real labels: the AP/PA projection of each radiograph
        rows.append(
            [f"hannover_{m['image_id']}.png", m["projection"].upper(), "test" if i % 3 == 0 else "train"]
        )
    csv_path = _write_csv(tmp_path / "proj.csv", ["imgpath", "label", "split"], rows)
    probe = P.ProbeSettings(
        fractions=(0.1, 1.0), seeds=(0, 1), epochs=4, lr=1e-2, warmup_epochs=1, batch_size=8
    )
    res = P.evaluate_images(ckpt, csv_path, "linear-probe", probe=probe, root=shared_data / "cxr")
    r = res["results"]
    assert res["classes"] == ["AP", "PA"] and res["n_broken"] == 0
    assert r["split"] == "the set's train/test split"
    assert r["n_train_split"] == 16 and r["n_test"] == 8
    assert r["fractions"]["0.1"]["n_train"] == 2 and r["fractions"]["1"]["n_train"] == 16
    for f in r["fractions"].values():
        assert set(f["seeds"]) == {"0", "1"}
        for run in f["seeds"].values():
            assert set(run["auroc_per_class"]) == {"AP", "PA"}
            assert all(v is None or 0.0 <= v <= 1.0 for v in run["auroc_per_class"].values())
    assert r["settings"]["seeds"] == (0, 1) and r["settings"]["epochs"] == 4
    assert "fraction" in P.format_table(res) and "mean AUROC" in P.format_table(res)


def test_linear_probe_head_learns_separable_features_and_is_seeded():
    torch.manual_seed(0)
    x = torch.randn(200, 16)
    y = torch.stack([(x[:, 0] > 0), (x[:, 1] > 0.5)], 1).float()
    s = P.ProbeSettings(epochs=30, lr=5e-2, warmup_epochs=6, batch_size=32)
    head = P.fit_linear_probe(x[:150], y[:150], s, seed=1)
    with torch.no_grad():
        scores = head(x[150:]).numpy()
    per, mean = P.per_class_auc(y[150:].numpy(), scores, ["a", "b"])
    assert mean is not None and mean > 0.95, per
    again = P.fit_linear_probe(x[:150], y[:150], s, seed=1)
    other = P.fit_linear_probe(x[:150], y[:150], s, seed=2)
    assert torch.equal(head.weight, again.weight) and not torch.equal(head.weight, other.weight)


def test_paper_settings_are_the_cli_defaults():
    a = images_parser().parse_args(["run", "--images", "x.csv", "--protocol", "linear-probe"])
    assert (a.epochs, a.lr, a.weight_decay, a.warmup_epochs) == (30, 5e-7, 1e-4, 6)
    assert a.fractions == (0.01, 0.1, 1.0)


def test_one_hot_csv_like_the_reference_5x200_meta(ckpt, cxr, tmp_path):
    header = ["", "imgpath", "Sex", *FIVE, "No Finding"]
    rows = [
        [i, str(f), "F", *[1.0 if c == i % 5 else 0.0 for c in range(5)], 0.0] for i, f in enumerate(cxr[:10])
    ]
    rows.append([99, str(cxr[10]), "M", 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # two positives: broken for zero-shot
    path = _write_csv(tmp_path / "chexpert-5x200-val-meta.csv", header, rows)
    image_set = P.read_image_set(path, FIVE)
    assert [it.targets for it in image_set.items] == [(i % 5,) for i in range(10)]
    assert all(it.split is None for it in image_set.items)
    assert "exactly one positive" in image_set.broken[0].reason
    multi = P.read_image_set(path, FIVE, single_label=False)  # linear probe: multi-label rows are fine
    assert multi.items[-1].targets == (0, 1)


def test_an_empty_set_is_one_clear_error(ckpt, tmp_path):
    empty = _write_csv(tmp_path / "empty.csv", ["path", "label"], [])
    with pytest.raises(P.ImageSetError, match="no usable image"):
        P.evaluate_images(ckpt, empty, "zeroshot")
    broken = _write_csv(
        tmp_path / "b.csv", ["path", "label"], [["nope.png", "Edema"], ["nope2.png", "Edema"]]
    )
    with pytest.raises(
        P.ImageSetError, match=r"no usable image \(2 broken rows; first: CSV line 2: file not found\)"
    ) as e:
        P.evaluate_images(ckpt, broken, "zeroshot")
    assert "\n" not in str(e.value)
    with pytest.raises(P.ImageSetError, match="expected a path column"):
        P.evaluate_images(ckpt, _write_csv(tmp_path / "h.csv", ["x", "label"], [["a", "b"]]), "zeroshot")


def test_a_prompt_file_of_our_own(ckpt, cxr, tmp_path):
    f = tmp_path / "prompts.json"
    f.write_text(
        json.dumps(
            {"classes": {"AP": ["anteroposterior chest radiograph."], "PA": ["posteroanterior view."]}}
        )
    )
    rows = [[str(p), "AP" if i % 2 else "PA"] for i, p in enumerate(cxr[:6])]
    res = P.evaluate_images(
        ckpt, _write_csv(tmp_path / "s.csv", ["path", "label"], rows), "zeroshot", prompts=str(f)
    )
    assert res["classes"] == ["AP", "PA"] and res["n_images"] == 6
    (tmp_path / "bad.json").write_text('{"classes": {"AP": []}}')
    with pytest.raises(Exception, match="non-empty list of prompt strings"):
        P.resolve_prompts(str(tmp_path / "bad.json"))


def test_dicom_rows_load_or_are_listed_as_unreadable(ckpt, shared_data, tmp_path):
    dicoms = sorted((shared_data / "dicom").glob("*.dcm"))
    if not dicoms:
        pytest.skip(f"no DICOM files in {shared_data / 'dicom'}")
    cxr = sorted((shared_data / "cxr").glob("*.png"))[:4]
    rows = [[str(f), FIVE[i % 5]] for i, f in enumerate(cxr)] + [[str(d), "Edema"] for d in dicoms]
    res = P.evaluate_images(ckpt, _write_csv(tmp_path / "d.csv", ["path", "label"], rows), "zeroshot")
    unreadable = [b for b in res["broken"] if b["reason"].startswith("unreadable image")]
    assert res["n_images"] + len(unreadable) == len(cxr) + len(dicoms) and res["n_images"] >= len(cxr)
    for b in unreadable:  # a DICOM whose transfer syntax has no decoder here is named, not fatal
        assert b["path"].endswith(".dcm") and "\n" not in b["reason"]


def test_split_values_train_test_valid_and_an_unknown_one(cxr, tmp_path):
    rows = [
        [str(cxr[0]), "Edema", "train"],
        [str(cxr[1]), "Edema", "Valid"],
        [str(cxr[2]), "Edema", "holdout"],
    ]
    image_set = P.read_image_set(_write_csv(tmp_path / "s.csv", ["path", "label", "split"], rows), FIVE)
    assert [it.split for it in image_set.items] == ["train", "test"]
    assert len(image_set.broken) == 1 and "unknown split 'holdout'" in image_set.broken[0].reason
