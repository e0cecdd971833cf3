"""The prepared dataset (radgaze.training.prepared): same items as the sessions, incremental refresh, damaged
files counted, used by ``train`` automatically, exact with DataLoader workers and resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from radgaze.capture.base.errors import ConfigError
from radgaze.training import data as tdata
from radgaze.training import prepared as tprep
from radgaze.training.config import load_config

TINY = tprep.Variant(112, 7, 8)  # the tiny preset: 112 px, 7x7 patches, 8 sentences


def _datasets(sessions: Path, prepared: Path, variant: tprep.Variant = TINY):
    index = tdata.build_index(sessions)
    cfg = load_config("tiny").data
    common = dict(image_size=variant.image_size, n_side=variant.n_side, seed=5, train=True)
    gaze = {c.key for c in index.cases[::2]}  # half the cases keep their gaze
    raw = tdata.SessionDataset(sessions, index.cases, cfg, gaze_keys=gaze, **common)
    folder = tprep.PreparedFolder(prepared, variant)
    by_key = {c.key: c for c in folder.cases}
    prep = tprep.PreparedDataset(
        folder, sessions, [by_key[c.key] for c in index.cases], cfg, gaze_keys=gaze, **common
    )
    return raw, prep


def _assert_same_item(a: dict, b: dict) -> None:
    assert a["key"] == b["key"] and a["index"] == b["index"]
    assert torch.equal(a["image"], b["image"]), a["key"]
    assert torch.equal(a["heatmap"], b["heatmap"]), a["key"]
    assert torch.equal(a["gaze"], b["gaze"]), a["key"]
    assert a["sentences"] == b["sentences"] and a["labels"] == b["labels"]
    assert a["has_gaze"] == b["has_gaze"]


def test_prepared_items_are_the_items_decoded_from_the_sessions(sessions_copy, tmp_path):
    out = tmp_path / "prep"
    report = tprep.prepare(sessions_copy, out, [TINY, tprep.Variant(64, 2, 3)])
    assert report.n_cases == 16 and report.refreshed_files == 4 and not report.skipped
    raw, prep = _datasets(sessions_copy, out)
    assert len(raw) == len(prep) == 16
    n_with_gaze = 0
    for epoch in (0, 3):  # augmentation differs by epoch; both sides must draw the same
        for i in range(len(raw)):
            a, b = raw[(epoch, i)], prep[(epoch, i)]
            _assert_same_item(a, b)
            n_with_gaze += a["has_gaze"]
    assert 0 < n_with_gaze < 32  # both kinds of case were compared
    s_raw, s_prep = raw.sample(1), prep.sample(1)
    assert s_raw.letterbox == s_prep.letterbox
    assert [m is None for m in s_raw.heatmaps_sq] == [m is None for m in s_prep.heatmaps_sq]
    for m_raw, m_prep in zip(s_raw.heatmaps_sq, s_prep.heatmaps_sq, strict=True):
        if m_raw is not None:  # per-sentence maps are stored as float16
            np.testing.assert_allclose(m_prep, m_raw, rtol=2e-3, atol=1e-7)
    # the second variant is there too, at its own size and grid
    small = tprep.PreparedFolder(out, tprep.Variant(64, 2, 3))
    ds = tprep.PreparedDataset(
        small, sessions_copy, small.cases, load_config("tiny").data, image_size=64, n_side=2
    )
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["gaze"].shape[1] == 4 and len(item["sentences"]) <= 3


def test_refresh_redoes_only_changed_files_and_counts_damaged_ones(sessions_copy, tmp_path):
    out = sessions_copy / tprep.PREPARED_DIR
    first = tprep.prepare(sessions_copy, None, [TINY])
    assert first.out == out and first.refreshed_files == 4
    assert tprep.prepare(sessions_copy, None, [TINY]).refreshed_files == 0
    files = sorted(sessions_copy.glob("*.h5"))
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # "changed" by mtime
    files[1].unlink()
    (sessions_copy / "zz-damaged.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 600)
    again = tprep.prepare(sessions_copy, None, [TINY])
    assert again.refreshed_files == 1 and again.removed_files == 1
    assert again.n_cases == 12 and len(again.skipped) == 1
    assert again.skipped[0]["file"] == "zz-damaged.h5" and again.skipped[0]["case_id"] is None
    after = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    assert len(after) == 3
    unchanged = [n for n in after if n in before and after[n] == before[n]]
    assert len(unchanged) == 2  # the two untouched files' shards were not rewritten
    folder = tprep.PreparedFolder(out, TINY)
    assert len(folder.cases) == 12 and folder.index(sessions_copy).report()["n_skipped"] == 1
    assert not any(c.file == files[1].name for c in folder.cases)


def test_a_variant_the_prepared_folder_lacks_is_refused_with_what_it_has(synth_sessions, tmp_path):
    tprep.prepare(synth_sessions, tmp_path / "p", [TINY])
    with pytest.raises(ConfigError, match=r"variants \[\[112, 7, 8\]\].*not \[224, 7, 16\]"):
        tprep.PreparedFolder(tmp_path / "p", tprep.Variant(224, 7, 16))


def test_prepare_command_writes_the_folder_train_finds(sessions_copy, capsys):
    from radgaze.app.cli import main

    assert main(["prepare", str(sessions_copy), "--config", "tiny", "--size", "64", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_cases"] == 16 and rep["variants"] == ["s64-g4-m8", "s112-g7-m8"]
    assert tprep.find_prepared(sessions_copy) == sessions_copy / tprep.PREPARED_DIR
    assert tprep.find_prepared(sessions_copy / tprep.PREPARED_DIR) == sessions_copy / tprep.PREPARED_DIR
    assert main(["prepare", str(sessions_copy), "--config", "tiny", "--size", "8"]) == 2  # one clear line
    assert "at least 16 px" in capsys.readouterr().err


def test_prepare_and_bench_data_help_give_defaults_and_an_example(capsys):
    from radgaze.app.cli import main

    for argv in (["prepare", "--help"], ["bench", "data", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "example:" in text and "(default:" in text, argv


# ----------------------------------------------------------------------------------------- training
def _tiny(*over: str):
    return load_config("tiny", ["epochs=2", "batch_size=4", "eval_at_end=false", "num_threads=1", *over])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "state.pt", map_location="cpu", weights_only=False)["model"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wb:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.slow
def test_train_reads_the_prepared_form_and_ends_with_the_weights_of_a_raw_run(sessions_copy, tmp_path):
    from radgaze.training.trainer import train

    raw = train(_tiny(), sessions_copy, tmp_path / "raw", show_bar=False)
    assert raw["data"]["prepared"] is None
    tprep.prepare(sessions_copy, None, [TINY])
    # found in .radgaze-prepared; the final evaluation reads the records from the sessions beside it
    prep = train(_tiny("eval_at_end=true"), sessions_copy, tmp_path / "prep", show_bar=False)
    assert prep["data"]["prepared"] == str(sessions_copy / tprep.PREPARED_DIR)
    assert prep["eval"]["n_cases"] == 16
    assert prep["steps"] == raw["steps"] == 8 and prep["data"]["n_cases"] == 16
    _assert_same_weights(tmp_path / "raw", tmp_path / "prep")
    # a prepared folder copied without its sessions (a cluster's shared disk) trains on its own
    moved = tmp_path / "elsewhere" / "prepared"
    shutil.copytree(sessions_copy / tprep.PREPARED_DIR, moved)
    shutil.rmtree(sessions_copy)
    alone = train(_tiny("eval_at_end=true"), moved, tmp_path / "alone", show_bar=False)
    assert alone["finished"] and alone["data"]["prepared"] == str(moved)
    assert alone["eval"] is None  # no records to evaluate against: skipped, said in the log
    _assert_same_weights(tmp_path / "raw", tmp_path / "alone")


@pytest.mark.slow
def test_training_with_workers_interrupted_and_resumed_ends_with_the_in_process_weights(
    synth_sessions, tmp_path
):
    from radgaze.training.trainer import train

    prepared = tmp_path / "prepared"
    tprep.prepare(synth_sessions, prepared, [TINY])
    ref = train(_tiny(), synth_sessions, tmp_path / "ref", show_bar=False)  # raw, no workers
    assert ref["finished"] and ref["steps"] == 8
    workers = _tiny("num_workers=2")
    part = train(workers, prepared, tmp_path / "w", show_bar=False, stop_after_steps=3)  # mid-epoch 0
    assert not part["finished"] and part["steps"] == 3
    done = train(workers, prepared, tmp_path / "w", show_bar=False, resume=True)
    assert done["finished"] and done["steps"] == 8
    _assert_same_weights(tmp_path / "ref", tmp_path / "w")
    steps = [json.loads(x)["step"] for x in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
