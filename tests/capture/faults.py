"""Helpers of the fault suite (tests/capture/test_faults*.py): small and read-only file systems, bit flips.

A full disk is a real one: a tmpfs of a few MB mounted for the test (needs root, as the suite's machines run
it; elsewhere the test is skipped with that reason). A read-only folder is a tmpfs remounted read-only (root
ignores permission bits, so ``chmod`` would not do), or a ``chmod 555`` folder for other users.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest


@contextlib.contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` KiB mounted on ``folder`` for the block (skips the test where it cannot)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a small tmpfs, and mounting one needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """An empty folder nothing can be written in, for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    with small_disk(folder, 64):
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder


def fill_disk(folder: Path, leave_bytes: int) -> None:
    """Write a filler file into ``folder`` until only about ``leave_bytes`` are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler.bin", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))


def chunk_spans(path: Path, datasets: list[str]) -> list[tuple[str, int, int]]:
    """(dataset, byte offset, size) of every stored chunk of the named datasets (as HDF5 placed them)."""
    spans = []
    with h5py.File(path, "r") as f:
        for name in datasets:
            dsid = f[name].id
            for i in range(dsid.get_num_chunks()):
                info = dsid.get_chunk_info(i)
                spans.append((name, int(info.byte_offset), int(info.size)))
    return spans


def flip_bit(src: Path, dst: Path, offset: int, bit: int) -> None:
    data = bytearray(src.read_bytes())
    data[offset] ^= 1 << bit
    dst.write_bytes(bytes(data))


def random_flips(spans: list[tuple[str, int, int]], n: int, seed: int) -> list[tuple[str, int, int]]:
    """``n`` (dataset, byte offset, bit) drawn uniformly over the bytes of the spans."""
    rng = np.random.default_rng(seed)
    sizes = np.array([s[2] for s in spans], float)
    picks = rng.choice(len(spans), size=n, p=sizes / sizes.sum())
    return [(spans[k][0], spans[k][1] + int(rng.integers(spans[k][2])), int(rng.integers(8))) for k in picks]
