"""What keeps a session file whole and its own: checksums, a content digest, one writer, room on the disk.

* Every dataset of schema 4 carries HDF5's Fletcher-32 checksum filter (after Blosc, so it covers the bytes as
  stored; since schema 5 the annotation log too, stored as bytes): a flipped bit in a chunk makes HDF5 refuse
  to read that chunk, and :func:`damaged_datasets` names the dataset.
* A closed session carries :data:`DIGEST_ATTR`, the SHA-256 of everything it holds (every dataset's data, dtype
  and shape, every attribute, by name in sorted order; the digest attribute itself left out), written whenever
  a writer closes it (:func:`stamp_digest`). ``inspect`` recomputes it (:func:`digest_problem`): it also
  catches what the chunk checksums do not cover (attributes, a dataset's shape).
* One writer: :class:`WriterLock` is a lock file beside the session (``.NAME.lock``, holding the writer's
  process id) created exclusively and held with ``flock`` for the writer's life; a second writer gets one line
  naming the first. A lock file whose process is gone (``kill -9``) is not held and is taken over.
* Room: :func:`check_free_space` before a recording (what the recorders show and refuse on).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from radgaze.capture.base.errors import RadgazeError, SessionBusyError, StoreWriteError

DIGEST_ATTR = "content_sha256"
CHECKSUM = {"fletcher32": True}  # create_dataset keywords every schema-4 dataset gets
# bytes per minute of a live recording before compaction (benchmarks/README.md: ~5 MB/min written, 2.4 after)
LIVE_BYTES_PER_MIN = 6_000_000
# A writer stops while this much is still free: HDF5 reports a full disk only when it evicts its cache (as
# ignored errors in h5py's object destructors: the writes "succeed", the file is left invalid, a close can
# crash), so the writer looks before it writes and keeps room for the metadata its close writes.
DISK_RESERVE_BYTES = 1_000_000


def content_digest(f: h5py.File) -> str:
    """SHA-256 (hex) of a session's datasets and attributes in sorted name order (the digest attribute left
    out). Raises what HDF5 raises on a damaged chunk (OSError)."""
    h = hashlib.sha256()
    _hash_attrs(h, "/", f.attrs)
    names: list[str] = []
    f.visit(names.append)
    for name in sorted(names):
        obj = f[name]
        h.update(f"\0{name}\0".encode())
        _hash_attrs(h, name, obj.attrs)
        if isinstance(obj, h5py.Dataset):
            h.update(f"{obj.dtype.str if obj.dtype.names is None else obj.dtype.descr}{obj.shape}".encode())
            h.update(_value_bytes(obj[()]))
    return h.hexdigest()


def _value_bytes(value: object) -> bytes:
    """The bytes of a dataset's or attribute's value (variable-length strings by content, not by pointer)."""
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        return np.ascontiguousarray(value).tobytes()
    if isinstance(value, np.ndarray):
        return b"\0".join(v if isinstance(v, bytes) else repr(v).encode() for v in value.reshape(-1))
    return repr(value).encode()


def _hash_attrs(h, name: str, attrs: h5py.AttributeManager) -> None:
    for key in sorted(k for k in attrs if not (name == "/" and k == DIGEST_ATTR)):
        h.update(f"\0@{key}\0".encode() + _value_bytes(attrs[key]))


def stamp_digest(f: h5py.File) -> None:
    """Write the content digest of an open (writable) session file."""
    f.attrs[DIGEST_ATTR] = content_digest(f)


def digest_problem(f: h5py.File) -> str | None:
    """One sentence when the stored digest does not match the content (None: it matches, or there is none:
    an older file, or one a writer never closed)."""
    stored = f.attrs.get(DIGEST_ATTR)
    if stored is None:
        return None
    stored = stored.decode() if isinstance(stored, bytes) else str(stored)
    try:
        now = content_digest(f)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        return f"content digest: expected to read every dataset, got {type(exc).__name__}: {exc}"
    if now != stored:
        return f"content digest: expected sha256 {stored[:16]}… (written when closed), got {now[:16]}… (changed since)"
    return None


def damaged_datasets(f: h5py.File) -> list[str]:
    """One sentence per dataset HDF5 cannot read whole (a Fletcher-32 mismatch, a damaged chunk)."""
    problems: list[str] = []

    def check(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            try:
                obj[()]
            except (OSError, RuntimeError, ValueError) as exc:
                problems.append(
                    f"dataset {name}: expected intact data, got damage ({type(exc).__name__}: {exc})"
                )

    try:
        f.visititems(check)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        problems.append(f"file structure: expected readable groups, got damage ({type(exc).__name__}: {exc})")
    return problems


@dataclass
class WriterLock:
    """The lock file of a session being written (see the module doc). ``release()`` removes it."""

    session: Path
    fd: int

    @property
    def path(self) -> Path:
        return lock_path(self.session)

    @classmethod
    def acquire(cls, session: Path, advice: str = "record into another file") -> WriterLock:
        path = lock_path(session)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreWriteError(
                f"{session.parent}: expected a folder radgaze can write in, got {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SessionBusyError(
                f"{session}: expected no other writer, got one already writing it ({holder}); {advice}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid()}).encode())
        return cls(session, fd)

    def release(self) -> None:
        if self.fd < 0:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


def writer_of(session: Path) -> str | None:
    """Who is writing ``session`` now (its lock file's text: the writer's process id), or None when nobody
    holds its lock (no lock file, or one a killed writer left)."""
    path = lock_path(Path(session))
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.read(fd, 200).decode(errors="replace").strip() or "another process"
    finally:
        os.close(fd)  # closing drops a lock this look took
    return None


def lock_path(session: Path) -> Path:
    return session.with_name(f".{session.name}.lock")


def check_free_space(folder: Path, minutes: float, bytes_per_min: int = LIVE_BYTES_PER_MIN) -> str:
    """A line saying the free space of ``folder`` and the minutes of recording it holds; raises
    :class:`StoreWriteError` (one line) when it holds fewer than ``minutes`` or the folder is not writable."""
    folder = Path(folder)
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK):
        raise StoreWriteError(f"{existing}: expected a folder radgaze can write in, got a read-only one")
    free = shutil.disk_usage(existing).free
    holds_min = free / bytes_per_min
    size = f"{free / 1e9:.1f} GB" if free >= 1e9 else f"{free / 1e6:.1f} MB"
    line = f"free space in {existing}: {size}, room for ~{holds_min:.0f} min of recording"
    if holds_min < minutes:
        raise StoreWriteError(f"{line}; expected room for at least {minutes:g} min (--expect-minutes)")
    return line


def free_bytes(path: Path) -> int:
    """Bytes free to this user on the file system holding ``path`` (a file or folder)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def room_problem(path: Path, need_bytes: int = 0, reserve_bytes: int | None = None) -> str | None:
    """A sentence when writing ``need_bytes`` more into ``path``'s file system would eat into the reserve."""
    reserve = DISK_RESERVE_BYTES if reserve_bytes is None else reserve_bytes
    free = free_bytes(path)
    if free - need_bytes >= reserve:
        return None
    return (
        f"disk full: {free / 1e6:.1f} MB free where {(need_bytes + reserve) / 1e6:.1f} MB are needed "
        f"({need_bytes / 1e6:.1f} MB to write, {reserve / 1e6:.1f} MB kept for closing the file)"
    )


def as_write_error(path: Path, exc: BaseException) -> RadgazeError:
    """One line for a write into ``path`` that failed (disk full, read-only folder, ...)."""
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return StoreWriteError(f"{path}: cannot write ({reason}); what was written before is kept")
