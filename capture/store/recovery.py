"""Recovery of session files: compaction of a closed live file (space SWMR flushes left behind), the
read-only opening of a file whose writer was killed (an unfinished write undone and the superblock flags
cleared, on a copy; HDF5's lookup3), and the same repair in place for a writer that takes such a file over.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import h5py

from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.store.integrity import room_problem, stamp_digest
from radgaze.capture.store.journal import journal_path, pending_undo, roll_back

_log = logging.getLogger(__name__)


def compact_session_file(path: Path) -> None:
    """Rewrite a closed live session without the space its SWMR flushes left behind (HDF5 does not reuse
    space freed under SWMR: each flush's copy of a growing compressed chunk, and the chunk index, stay in the
    file; ~5 MB per minute of reading where the data is ~2.3). Chunks are copied as stored, not recompressed.
    The copy goes to a hidden name and replaces ``path`` only once whole, so a crash here leaves the closed
    original; when the copy fails (disk full, ...) the original is kept and the failure logged."""
    partial = path.with_name(f".{path.name}.compact-partial")
    full = room_problem(path.parent, path.stat().st_size)
    if full is not None:
        _log.warning("%s: kept as written, not compacted (%s)", path, full)
        return
    try:
        with h5py.File(path, "r") as src, h5py.File(partial, "w", libver="latest") as dst:
            dst.attrs.update(dict(src.attrs))
            for name in src:  # cases/ and whatever other groups the schema has next to it
                src.copy(src[name], dst, name=name)
            dst.flush()
            stamp_digest(dst)
        os.replace(partial, path)
    except (OSError, RuntimeError) as exc:  # h5py reports a full disk as either
        partial.unlink(missing_ok=True)
        _log.warning("%s: kept as written, not compacted (%s: %s)", path, type(exc).__name__, exc)


def open_h5(path: Path) -> tuple[h5py.File, Path | None]:
    """Open read-only: plainly; as an SWMR reader when a live writer has it (or was killed in SWMR mode);
    else, when a writer was killed outside SWMR mode (between two cases), through a copy rolled back to its
    last finished flush (:mod:`radgaze.capture.store.journal`) with its "open for writing" flag cleared.
    Returns the file and the temporary copy to delete on close (or None). The recording itself is not touched."""
    if not path.is_file():
        raise SessionFormatError(f"{path}: expected a session file, found nothing there")
    if path.stat().st_size == 0:
        raise SessionFormatError(f"{path}: expected an HDF5 session file, got an empty file")
    undo = pending_undo(path)
    if undo is not None:  # a writer stopped in the middle of a write: its flags may not even say so
        return _open_rolled_back_copy(path, undo)
    try:
        return h5py.File(path, "r"), None
    except OSError as exc:
        message = str(exc)
    flags = _superblock_flags(path)
    if flags & _SWMR_WRITE_ACCESS:  # a live SWMR writer has it, or was killed while it had it
        try:
            return h5py.File(path, "r", swmr=True), None
        except OSError as exc:
            message = str(exc)
    if flags:  # a writer never closed it: read a copy with the flags cleared
        copy = _temporary_copy(path)
        if _clear_flags(copy):
            try:
                return h5py.File(copy, "r"), copy
            except OSError as exc:
                message = str(exc)
        copy.unlink(missing_ok=True)
    raise _cannot_open(path, message)


def _open_rolled_back_copy(path: Path, undo: tuple[int, list]) -> tuple[h5py.File, Path]:
    copy = _temporary_copy(path)
    try:
        n_bytes = roll_back(copy, undo)
        _clear_flags(copy)
        f = h5py.File(copy, "r")
    except OSError as exc:
        copy.unlink(missing_ok=True)
        raise _cannot_open(path, f"{exc} (after undoing its unfinished write)") from None
    _log.warning(
        "%s: its writer stopped in the middle of a write; read as of its last flush (%d bytes undone)",
        path,
        n_bytes,
    )
    return f, copy


def repair_in_place(path: Path) -> bool:
    """For a writer that holds ``path``'s lock (nobody else writes it): roll back what a killed writer left
    unfinished and clear the superblock's "open for writing" flags, as HDF5's ``h5clear -s`` does. Returns
    whether there was anything to repair."""
    undo = pending_undo(path)
    if undo is not None:
        roll_back(path, undo)
    journal_path(path).unlink(missing_ok=True)
    if undo is None and not _superblock_flags(path):
        return False
    _clear_flags(path)
    _log.warning("%s: repaired what its killed writer left (read as of its last flush)", path)
    return True


def _cannot_open(path: Path, message: str) -> SessionFormatError:
    return SessionFormatError(
        f"{path}: expected an HDF5 session file, got something HDF5 cannot open (damaged, truncated or "
        f"foreign): {message}"
    )


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SWMR_WRITE_ACCESS = 0x04  # superblock consistency flags (HDF5 file format spec): 0x01 write, 0x04 SWMR write


def _superblock_flags(path: Path) -> int:
    """The file-consistency flags of a version-2/3 superblock at offset 0 (0 when absent or not that kind)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[11] if len(head) == 12 and head[:8] == _HDF5_SIGNATURE and head[8] in (2, 3) else 0


def _temporary_copy(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-recovered-", suffix=".h5")
    os.close(fd)
    shutil.copyfile(path, name)
    return Path(name)


def _clear_flags(path: Path) -> bool:
    """Clear, in ``path`` itself, the superblock's file-consistency flags and raise its end-of-file address
    to no less than the bytes on disk (what HDF5's ``h5clear -s --increment`` does), padding with zeros up to
    that address; False (nothing changed) when the superblock is not the version-2/3 kind that has the flags.

    Superblock v2/v3 (HDF5 file format spec, "Superblock"): signature (8), version (1), size of offsets (1),
    size of lengths (1), consistency flags (1), base / extension / end-of-file / root addresses, then a
    Jenkins lookup3 checksum of all that.
    """
    with open(path, "rb") as fh:
        head = fh.read(12 + 4 * 8 + 4)
    if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
        return False
    n = 12 + 4 * head[9]
    sb = bytearray(head[:n])
    if len(sb) < n or lookup3(bytes(sb)) != int.from_bytes(head[n : n + 4], "little"):
        return False
    sb[11] = 0
    o = head[9]
    eoa = int.from_bytes(sb[12 + 2 * o : 12 + 3 * o], "little")
    size = path.stat().st_size
    sb[12 + 2 * o : 12 + 3 * o] = max(eoa, size).to_bytes(o, "little")
    with open(path, "r+b") as fh:
        fh.write(bytes(sb) + lookup3(bytes(sb)).to_bytes(4, "little"))
        if eoa > size:  # the writer died before the file grew to what its superblock promises
            fh.truncate(eoa)
    return True


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (public domain), the checksum HDF5 puts on its metadata."""
    m = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & m

    def word(i: int) -> int:
        return int.from_bytes(data[i : i + 4], "little")

    a = b = c = (0xDEADBEEF + len(data) + initval) & m
    i, rest = 0, len(data)
    while rest > 12:
        a, b, c = (a + word(i)) & m, (b + word(i + 4)) & m, (c + word(i + 8)) & m
        a = ((a - c) & m) ^ rot(c, 4)
        c = (c + b) & m
        b = ((b - a) & m) ^ rot(a, 6)
        a = (a + c) & m
        c = ((c - b) & m) ^ rot(b, 8)
        b = (b + a) & m
        a = ((a - c) & m) ^ rot(c, 16)
        c = (c + b) & m
        b = ((b - a) & m) ^ rot(a, 19)
        a = (a + c) & m
        c = ((c - b) & m) ^ rot(b, 4)
        b = (b + a) & m
        i, rest = i + 12, rest - 12
    if rest == 0:
        return c
    tail = data[i:] + bytes(12 - rest)
    a = (a + int.from_bytes(tail[0:4], "little")) & m
    b = (b + int.from_bytes(tail[4:8], "little")) & m
    c = (c + int.from_bytes(tail[8:12], "little")) & m
    c = ((c ^ b) - rot(b, 14)) & m
    a = ((a ^ c) - rot(c, 11)) & m
    b = ((b ^ a) - rot(a, 25)) & m
    c = ((c ^ b) - rot(b, 16)) & m
    a = ((a ^ c) - rot(c, 4)) & m
    b = ((b ^ a) - rot(a, 14)) & m
    return ((c ^ b) - rot(b, 24)) & m
