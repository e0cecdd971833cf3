"""The undo journal of a session file written outside HDF5's SWMR mode.

In SWMR mode HDF5 orders its metadata writes so that the file on disk is whole after any write; out of it
(between two cases, and for annotations, corrections and second looks, whose new groups and attributes SWMR
cannot add) it is whole only once a flush has finished. A writer killed while HDF5 writes a flush, or while its
metadata cache evicts entries, leaves metadata half-written: in one kill of ~100 at case boundaries the list of
cases itself ("Link iteration failed (bad version number for message)"), and with it every closed case.

So a file written outside SWMR goes through :class:`JournaledFile`, handed to h5py as a Python file object.
Before HDF5 overwrites any byte the file held when its last flush finished, the byte's old value is appended to
``.NAME.undo`` beside the session (one record per range, CRC-32 checked), and only then is the new value
written. When a flush finishes (HDF5 calls the file object's ``flush`` last), the journal is emptied: the file
is whole again. A clean close removes the journal. :func:`roll_back` puts the saved bytes back and cuts the file
to its size at the last finished flush: the file as it was then, whatever the kill interrupted.

Journal layout (little-endian): header ``MAGIC`` + size at the last finished flush (u64) + CRC-32 of those
16 bytes; then records of offset (u64), length (u32), CRC-32 of offset+length+data (u32), data. A record cut
short by a kill fails its CRC and ends the journal: its data write had not begun.

This guards against a killed process (``kill -9``, a crash): what it wrote is in the operating system's page
cache and reaches the disk. It does not guard against power loss: neither HDF5 nor the journal calls fsync.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

MAGIC = b"RGUNDO\x00\x01"
_HEADER = struct.Struct("<8sQI")
_RECORD = struct.Struct("<QII")


def journal_path(session: Path) -> Path:
    """Where the undo journal of ``session`` lives (hidden, beside it, like its lock file)."""
    return session.with_name(f".{session.name}.undo")


class JournaledFile(io.FileIO):
    """A session file opened for writing, whose overwritten bytes are journaled first (see the module doc).

    Hand it to ``h5py.File(journaled, "a", libver="latest")``; after closing the h5py file call
    :meth:`finish` (clean close: the journal goes) or :meth:`abandon` (a failed write: the journal stays, so
    readers roll back to the last finished flush)."""

    def __init__(self, path: str | os.PathLike, *, commit_on_flush: bool = True) -> None:
        """``commit_on_flush=False``: only :meth:`finish` ends the journal, so a kill at any point undoes
        everything written since opening (an edit of a closed file is all or nothing)."""
        super().__init__(path, "r+")
        self.commit_on_flush = commit_on_flush
        self.journal = journal_path(Path(path))
        self._journal_fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._commit()

    def write(self, data) -> int:
        self._save_before(self.tell(), len(memoryview(data)))
        return super().write(data)

    def truncate(self, size: int | None = None) -> int:
        size = self.tell() if size is None else size
        self._save_before(size, self._committed - size)
        return super().truncate(size)

    def flush(self) -> None:
        """HDF5 calls this when a flush of the file has finished: the file is whole, the journal starts anew."""
        super().flush()
        if self._journal_fd >= 0 and self.commit_on_flush:
            self._commit()

    def finish(self) -> None:
        """The h5py file has been closed cleanly: nothing to undo any more."""
        self.close()
        self.journal.unlink(missing_ok=True)

    def abandon(self) -> None:
        """A write failed: close, keeping the journal so the file is read as it was at its last flush."""
        self.close()

    def close(self) -> None:
        """Close without a last commit (also when garbage-collected): only HDF5's own flushes commit."""
        if getattr(self, "_journal_fd", -1) >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1
        super().close()

    def _commit(self) -> None:
        os.ftruncate(self._journal_fd, 0)  # an empty journal: the file is whole as it is
        self._committed = os.fstat(self.fileno()).st_size
        self._saved: list[tuple[int, int]] = []  # sorted, disjoint [start, end) ranges saved since
        head = _HEADER.pack(MAGIC, self._committed, 0)[:16]
        os.pwrite(self._journal_fd, head + struct.pack("<I", zlib.crc32(head)), 0)
        self._journal_end = _HEADER.size

    def _save_before(self, offset: int, n_bytes: int) -> None:
        """Journal the old value of the bytes of [offset, offset + n_bytes) the last flush left, once each."""
        end = min(offset + n_bytes, self._committed)
        for start, stop in _uncovered(self._saved, offset, end):
            old = os.pread(self.fileno(), stop - start, start)
            head = struct.pack("<QI", start, len(old))
            record = head + struct.pack("<I", zlib.crc32(head + old)) + old
            os.pwrite(self._journal_fd, record, self._journal_end)  # on its way to disk before the new data
            self._journal_end += len(record)
            self._saved = _merged(self._saved, (start, stop))


def _uncovered(saved: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of [start, end) not in the sorted, disjoint ``saved`` ranges."""
    gaps, at = [], start
    for s, e in saved:
        if e <= at:
            continue
        if s >= end:
            break
        if s > at:
            gaps.append((at, s))
        at = max(at, e)
    if at < end:
        gaps.append((at, end))
    return gaps


def _merged(saved: list[tuple[int, int]], new: tuple[int, int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted([*saved, new]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def pending_undo(session: Path) -> tuple[int, list[tuple[int, bytes]]] | None:
    """The size at the last finished flush and the saved (offset, old bytes) records of ``session``'s journal;
    None when there is no journal, or it holds no record (the file is whole as it is)."""
    try:
        data = journal_path(session).read_bytes()
    except (FileNotFoundError, PermissionError):
        return None
    if len(data) < _HEADER.size or data[:8] != MAGIC:
        return None
    if zlib.crc32(data[:16]) != int.from_bytes(data[16:20], "little"):
        return None
    committed = int.from_bytes(data[8:16], "little")
    records, at = [], _HEADER.size
    while at + _RECORD.size <= len(data):
        offset, length, crc = _RECORD.unpack_from(data, at)
        old = data[at + _RECORD.size : at + _RECORD.size + length]
        if len(old) != length or zlib.crc32(data[at : at + 12] + old) != crc:
            break  # cut short by the kill: its data write had not begun
        records.append((offset, old))
        at += _RECORD.size + length
    return (committed, records) if records or os.path.getsize(session) != committed else None


def roll_back(target: Path, undo: tuple[int, list[tuple[int, bytes]]]) -> int:
    """Put ``undo``'s saved bytes back into ``target`` (a copy of the session, or the session itself under its
    writer's lock) and cut it to the size of its last finished flush. Returns the bytes restored."""
    committed, records = undo
    with open(target, "r+b") as fh:
        for offset, old in reversed(records):
            fh.seek(offset)
            fh.write(old)
        fh.truncate(committed)
    return sum(len(old) for _, old in records)
