"""Evaluation on annotated sessions: the reader's labels drive zero-shot and retrieval, the reader's ellipses the
pointing game (each tied to the sentence whose gaze it holds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radgaze.capture.base.records import CaseAnnotation, LabelChoice, Shape
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter
from radgaze.capture.synth.session import write_synthetic_sessions
from radgaze.training import data as tdata
from radgaze.training import evaluate as tev
from radgaze.training.config import DataConfig


def test_case_labels_are_the_readers_when_annotated():
    from radgaze.capture.base.records import CaseRecord, DisplayGeometry, ImageRef

    rec = CaseRecord(
        "c", ImageRef("x.png", "0" * 64, 10, 10), DisplayGeometry(), 0.0, 1.0, labels=["cardiomegaly"]
    )
    assert tdata.case_labels(rec) == ["cardiomegaly"]
    rec.annotation = CaseAnnotation(
        labels=[LabelChoice("Enlarged cardiac silhouette", 5), LabelChoice("Pneumothorax", 2),
                LabelChoice("High lung volume / emphysema", 3)]
    )  # fmt: skip
    # "Less likely" (2) is not a finding the reader reports; the rest in radgaze's label style
    assert tdata.case_labels(rec) == ["enlarged_cardiac_silhouette", "high_lung_volume_emphysema"]
    rec.annotation = CaseAnnotation(labels=[LabelChoice("Normal radiograph", 5)])
    assert tdata.case_labels(rec) == ["normal"]


@pytest.fixture(scope="module")
def annotated_sessions(tmp_path_factory) -> Path:
    """Synthetic readings whose reader drew an ellipse around each finding (a little larger than its box)."""
    src = tmp_path_factory.mktemp("synth")
    out = tmp_path_factory.mktemp("annotated")
    paths = write_synthetic_sessions(src, 4, seed=3, cases_per_file=4, image_size=256)
    with SessionReader(paths[0]) as reader, SessionWriter(out / "annotated.h5") as writer:
        for case in reader.cases():
            shapes = []
            for f in case.findings or []:
                x0, y0, x1, y1 = f.box
                mx, my = 0.3 * (x1 - x0), 0.3 * (y1 - y0)
                shapes.append(Shape("ellipse", max(0, x0 - mx), max(0, y0 - my), min(case.image.width, x1 + mx),
                                    min(case.image.height, y1 + my), ("Other",), 5))  # fmt: skip
            case.annotation = CaseAnnotation(labels=[LabelChoice("Other", 5, "finding")], shapes=shapes)
            writer.write_case(case)
        for p in src.glob("*.png"):
            (out / p.name).write_bytes(p.read_bytes())
    return out


def test_the_pointing_game_uses_the_readers_ellipses(annotated_sessions: Path):
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    idx = tdata.build_index(annotated_sessions)
    assert idx.cases and all(c for c in idx.cases)
    ds = tdata.SessionDataset(annotated_sessions, idx.cases, DataConfig(), image_size=112, n_side=7)
    assert {tuple(ds[i]["labels"]) for i in range(len(ds))} == {
        ("other",)
    }  # the reader's, not the synthetic ones
    torch.manual_seed(0)
    model = EGMAModel(ModelConfig.preset("tiny"))
    out = tev.attention_metrics(model, ds, "cpu")
    masks = out["pointing_game_masks"]
    assert masks["reader_ellipse"] >= 1 and sum(masks.values()) == out["n_attention_sentences"]
    assert 0.0 <= out["pointing_game"] <= 1.0 and 0.0 < out["pointing_game_chance"] < 1.0
