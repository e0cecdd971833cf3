"""``radgaze inspect --words`` (issue 23, item 10): each case's transcript, sentence by sentence and word by word,
with times from the case start, as text and in --json; run as a person runs it (the ``radgaze`` command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from radgaze.capture.base.records import DisplayGeometry, ImageRef, Words
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.store.writer import SessionWriter

SAID = [("The", 11.0), ("heart", 11.3), ("is", 11.6), ("enlarged.", 11.8), ("No", 13.0), ("effusion.", 13.3)]


def _session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    with SessionWriter(path, reader_id="r01") as writer:
        writer.begin_case("case-1", ImageRef("img.png", "0" * 64, 640, 512), DisplayGeometry(), t_start=10.0)
        t = np.array([s for _, s in SAID])
        writer.append_words(Words(t, t + 0.25, [w for w, _ in SAID], np.ones(len(SAID))))
        h_hm, w_hm, _ = heatmap_grid(640, 512)
        heatmap = np.full((h_hm, w_hm), 1.0 / (h_hm * w_hm), np.float32)
        writer.append_sentence(
            t_start=11.0, t_end=12.05, window_start=10.5, window_end=12.05, text="The heart is enlarged.",
            heatmap=heatmap, n_fixations=3,
        )  # fmt: skip
        writer.append_sentence(
            t_start=13.0, t_end=13.55, window_start=12.5, window_end=13.55, text="No effusion.",
            heatmap=None, n_fixations=0,
        )  # fmt: skip
        writer.end_case(14.0)
    return path


def _radgaze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_inspect_words_prints_the_transcript_with_times(tmp_path):
    path = _session(tmp_path)
    proc = _radgaze(str(path), "--words")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "       1.    1.00–   2.05 s  The heart is enlarged.  (3 fixations)" in lines
    assert "       2.    3.00–   3.55 s  No effusion.  (no fixations: no heatmap)" in lines
    words = next(line for line in lines if line.lstrip().startswith("words:"))
    assert words.split("words:")[1].split() == ["1.00", "The", "1.30", "heart", "1.60", "is", "1.80",
                                                "enlarged.", "3.00", "No", "3.30", "effusion."]  # fmt: skip
    assert "transcript" not in _radgaze(str(path)).stdout  # only when asked


def test_inspect_words_json(tmp_path):
    proc = _radgaze(str(_session(tmp_path)), "--words", "--json")
    assert proc.returncode == 0, proc.stderr
    t = json.loads(proc.stdout)["cases"][0]["transcript"]
    assert t["sentences"][1] == {
        "text": "No effusion.", "t_start_s": 3.0, "t_end_s": 3.55, "n_fixations": 0, "heatmap": False
    }  # fmt: skip
    assert [w["text"] for w in t["words"]] == [w for w, _ in SAID]
    assert t["words"][1] == {"text": "heart", "t_start_s": 1.3, "t_end_s": 1.55}
