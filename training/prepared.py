"""The prepared form of a session folder: what training reads, decoded once, for fast random access.

``radgaze prepare SESSIONS [OUT]`` (default OUT: ``SESSIONS/.radgaze-prepared``) decodes every usable case
once and writes, per session file, one *shard* folder of plain ``.npy`` arrays plus a JSON of the text::

    OUT/manifest.json                  format, version, source folder, variants, shard per session file
    OUT/shards/<sha1 of file>/meta.json   source size + mtime, cases (id, labels, sentences), per variant:
                                          sentences kept, letterbox, which sentences have gaze
    OUT/shards/<..>/s224.image.npy     (C, 224, 224) float32 letterboxed image in [0, 1]   (one per size)
    OUT/shards/<..>/s224-g7-m16.reading.npy (C, S, S) float32 mean sentence heatmap on the square
    OUT/shards/<..>/s224-g7-m16.gaze.npy    (T, n) float32 patch-grid heatmap per kept sentence (T = sum m)
    OUT/shards/<..>/s224-g7-m16.maps.npy    (T, S, S) float16 each sentence's heatmap on the square

A *variant* is (image size S, patch grid side g, sentences kept m): the three numbers that change the arrays.
The arrays are exactly what :func:`radgaze.training.data.case_sample_from` computes from the session, so a run
fed from the prepared form is the same run as one fed from the sessions (the training arrays are float32; only
the per-sentence maps, which training never reads, are float16).

Why plain ``.npy`` read by offset: an item is one row of a few arrays, at a random index (the trainer's
seeded permutation, needed for exact resume). A ``.npy`` row sits at ``header + i * row_bytes``, so one
``pread`` fetches it with no decoding; the page cache does the rest. WebDataset shards are tar streams made
for sequential reading (random order would need shuffle buffers and breaks the exact (seed, epoch, index)
order); zarr adds a dependency and chunk (de)compression for arrays that are dense floats. Opening per read
(instead of a ``np.memmap`` per array) keeps no descriptors or mappings across DataLoader worker forks and
has no limit on the number of shards. Measured figures: ``radgaze bench data`` and benchmarks/README.md.

One shard per session file makes the refresh incremental: a file whose size or mtime changed (the session
index's test, :func:`radgaze.training.data.build_index`) gets its shard rebuilt, a new file gets one, a
removed file loses its own; damaged files and cases are skipped and counted, as in the index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from radgaze.capture.base.errors import ConfigError, SessionFormatError
from radgaze.model.image_transforms import LetterboxTransform
from radgaze.training import data as tdata

log = logging.getLogger(__name__)

PREPARED_DIR = ".radgaze-prepared"
MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "radgaze-prepared"
FORMAT_VERSION = 1


@dataclass(frozen=True, order=True)
class Variant:
    """The numbers that shape a prepared case: encoder image size, patch-grid side, sentences kept."""

    image_size: int
    n_side: int
    max_sentences: int

    @property
    def key(self) -> str:
        return f"s{self.image_size}-g{self.n_side}-m{self.max_sentences}"

    def as_list(self) -> list[int]:
        """[image_size, n_side, max_sentences], as the manifest stores it."""
        return [self.image_size, self.n_side, self.max_sentences]


@dataclass
class PrepareReport:
    out: Path
    n_files: int = 0
    n_cases: int = 0
    refreshed_files: int = 0  # shards (re)built on this call; 0 = everything was up to date
    removed_files: int = 0
    skipped: list[dict] = field(default_factory=list)  # {"file", "case_id" (or None), "error"}

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "n_files": self.n_files,
            "n_cases": self.n_cases,
            "refreshed_files": self.refreshed_files,
            "removed_files": self.removed_files,
            "n_skipped": len(self.skipped),
            "n_skipped_files": tdata.skipped_counts(self.skipped)[0],
            "n_skipped_cases": tdata.skipped_counts(self.skipped)[1],
            "skipped": self.skipped,
        }


# ------------------------------------------------------------------------------------------ locating
def is_prepared(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST_NAME).is_file()


def find_prepared(sessions: str | os.PathLike) -> Path | None:
    """The prepared folder for a ``train`` argument: the folder itself when it is one, else
    ``SESSIONS/.radgaze-prepared`` when present, else None (train reads the sessions)."""
    folder = Path(sessions)
    if is_prepared(folder):
        return folder
    if is_prepared(folder / PREPARED_DIR):
        return folder / PREPARED_DIR
    return None


def read_manifest(out: Path) -> dict:
    path = out / MANIFEST_NAME
    try:
        blob = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SessionFormatError(f"expected a prepared dataset manifest at {path}, got: {exc}") from exc
    if blob.get("format") != FORMAT_NAME or blob.get("version") != FORMAT_VERSION:
        raise SessionFormatError(
            f"expected {FORMAT_NAME} version {FORMAT_VERSION} in {path}, "
            f"got {blob.get('format')!r} version {blob.get('version')!r}"
        )
    return blob


def source_folder(out: Path, manifest: dict) -> Path | None:
    """The session folder a prepared one was built from, or None when it is not here (a copied dataset)."""
    src = Path(manifest["sessions"])
    if src.is_dir():
        return src
    if out.name == PREPARED_DIR and out.parent.is_dir() and any(out.parent.glob("*.h5")):
        return out.parent
    return None


# -------------------------------------------------------------------------------------------- writing
def _shard_name(rel: str) -> str:
    return hashlib.sha1(rel.encode()).hexdigest()[:16]


def _write_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)


def _write_shard(
    sessions: Path, rel: str, cases: list[tdata.IndexedCase], variants: list[Variant], dst: Path, stat
) -> dict:
    """Decode each case of one session file once and write every variant's arrays into ``dst``."""
    dst.mkdir(parents=True)
    kept, problems = [], []
    per_variant: dict[str, list[tdata.CaseSample]] = {v.key: [] for v in variants}
    for case in cases:
        try:
            record, pixels01 = tdata.read_case(sessions, case)
            samples = {
                v.key: tdata.case_sample_from(
                    case.key,
                    record,
                    pixels01,
                    image_size=v.image_size,
                    n_side=v.n_side,
                    max_sentences=v.max_sentences,
                )
                for v in variants
            }
        except (SessionFormatError, OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("skipping %s case %s: %s", rel, case.case_id, exc)
            problems.append({"case_id": case.case_id, "error": f"{type(exc).__name__}: {exc}"})
            continue
        kept.append(
            {
                "case_id": case.case_id,
                "labels": list(case.labels),
                "sentences": list(record.sentences.text),
                "n_heatmaps": case.n_heatmaps,
            }
        )
        for k, s in samples.items():
            per_variant[k].append(s)
    meta = {"file": rel, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "cases": kept}
    meta["problems"], meta["variants"] = problems, {}
    for v in variants:
        meta["variants"][v.key] = _write_variant(dst, v, per_variant[v.key])
    (dst / "meta.json").write_text(json.dumps(meta))
    return meta


def _write_variant(dst: Path, v: Variant, samples: list[tdata.CaseSample]) -> dict:
    s, n = v.image_size, v.n_side
    image_path = dst / f"s{s}.image.npy"
    if not image_path.exists():
        imgs = [x.image01[0].numpy() for x in samples]
        _write_npy(image_path, np.stack(imgs) if imgs else np.zeros((0, s, s), np.float32))
    readings = [x.reading for x in samples]
    _write_npy(
        dst / f"{v.key}.reading.npy", np.stack(readings) if readings else np.zeros((0, s, s), np.float32)
    )
    rows = [x.gaze for x in samples]
    _write_npy(dst / f"{v.key}.gaze.npy", np.concatenate(rows) if rows else np.zeros((0, n * n), np.float32))
    maps = [
        np.zeros((s, s), np.float16) if m is None else m.astype(np.float16)
        for x in samples
        for m in x.heatmaps_sq
    ]
    _write_npy(dst / f"{v.key}.maps.npy", np.stack(maps) if maps else np.zeros((0, s, s), np.float16))
    return {
        "n_sentences": [len(x.sentences) for x in samples],
        "has_map": [[m is not None for m in x.heatmaps_sq] for x in samples],
        "letterbox": [asdict(x.letterbox) for x in samples],
    }


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Put ``tmp`` where ``dst`` is, the old one removed after the swap (a reader sees old or new)."""
    old = dst.with_name(dst.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def _load_manifest_or_new(out: Path, sessions: Path) -> dict:
    fresh = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "sessions": str(sessions.resolve())}
    fresh.update(variants=[], shards={})
    if not is_prepared(out):
        return fresh
    try:
        blob = read_manifest(out)
    except SessionFormatError as exc:
        log.warning("rebuilding the prepared dataset in %s: %s", out, exc)
        return fresh
    blob["sessions"] = str(sessions.resolve())
    return blob


def prepare(
    sessions: str | os.PathLike, out: str | os.PathLike | None, variants: list[Variant]
) -> PrepareReport:
    """Build or refresh the prepared form of ``sessions`` in ``out`` for ``variants`` (plus those it has).

    A session file's shard is rebuilt when the file's size or mtime changed or a variant is missing; shards of
    removed files are deleted. The manifest is replaced atomically last, so an interrupted refresh is resumed
    by the next call.
    """
    sessions = Path(sessions)
    out = Path(out) if out is not None else sessions / PREPARED_DIR
    index = tdata.build_index(sessions)
    manifest = _load_manifest_or_new(out, sessions)
    wanted = sorted({Variant(*v) for v in manifest["variants"]} | set(variants))
    manifest["variants"] = [v.as_list() for v in wanted]
    by_file: dict[str, list[tdata.IndexedCase]] = {}
    for c in index.cases:
        by_file.setdefault(c.file, []).append(c)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    report = PrepareReport(out=out, n_files=index.n_files, skipped=list(index.skipped))
    shards: dict[str, dict] = {}
    for rel, cases in sorted(by_file.items()):
        st = (sessions / rel).stat()
        entry = manifest["shards"].get(rel)
        meta = _fresh_meta(out, entry, st, wanted)
        if meta is None:
            name = _shard_name(rel)
            tmp = out / "shards" / f".{name}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            meta = _write_shard(sessions, rel, cases, wanted, tmp, st)
            _replace_dir(tmp, out / "shards" / name)
            report.refreshed_files += 1
        shards[rel] = {"dir": _shard_name(rel), "size": meta["size"], "mtime_ns": meta["mtime_ns"]}
        report.n_cases += len(meta["cases"])
        report.skipped += [{"file": rel, **p} for p in meta["problems"]]
    for rel in set(manifest["shards"]) - set(shards):
        shutil.rmtree(out / "shards" / manifest["shards"][rel]["dir"], ignore_errors=True)
        report.removed_files += 1
    manifest["shards"] = shards
    manifest["n_files"] = index.n_files
    manifest["skipped_files"] = list(index.skipped)  # files/cases the session index could not use
    tdata.write_json_atomic(out / MANIFEST_NAME, manifest)
    return report


def _fresh_meta(out: Path, entry: dict | None, st, wanted: list[Variant]) -> dict | None:
    """The shard's meta when it is up to date with the file and has every wanted variant, else None."""
    if not entry or entry["size"] != st.st_size or entry["mtime_ns"] != st.st_mtime_ns:
        return None
    try:
        meta = json.loads((out / "shards" / entry["dir"] / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if any(v.key not in meta["variants"] for v in wanted):
        return None
    return meta


# -------------------------------------------------------------------------------------------- reading
class NpyRows:
    """Rows of a ``.npy`` file read by offset (one ``pread`` per row range; no mapping held)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran:
            raise SessionFormatError(f"expected a C-ordered array in {path}, got a Fortran-ordered one")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a new writable array."""
        if not 0 <= start <= stop <= self.shape[0]:
            raise IndexError(f"rows {start}:{stop} of {self.path} (shape {self.shape})")
        buf = bytearray((stop - start) * self.row_bytes)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            got = os.preadv(fd, [buf], self.offset + start * self.row_bytes)
        finally:
            os.close(fd)
        if got != len(buf):
            raise SessionFormatError(f"expected {len(buf)} bytes at row {start} of {self.path}, read {got}")
        return np.frombuffer(buf, dtype=self.dtype).reshape((stop - start, *self.row_shape))


@dataclass(frozen=True)
class _CaseLoc:
    shard: str  # shard folder name
    row: int  # case row in the shard
    first_sentence: int  # row of its first kept sentence in the shard's gaze/maps arrays
    n_sentences: int


class PreparedFolder:
    """A prepared dataset opened for one variant: its cases (as the session index knows them) and arrays."""

    def __init__(self, out: str | os.PathLike, variant: Variant) -> None:
        self.out = Path(out)
        self.manifest = read_manifest(self.out)
        self.variant = variant
        if variant.as_list() not in self.manifest["variants"]:
            raise ConfigError(
                f"the prepared dataset {self.out} has variants {self.manifest['variants']} "
                f"(image size, patch grid, sentences), not {variant.as_list()}; run "
                f"`radgaze prepare` with the sessions present to add it"
            )
        self.cases: list[tdata.IndexedCase] = []
        self.skipped: list[dict] = []
        self.meta: dict[str, dict] = {}
        self.locs: dict[str, _CaseLoc] = {}
        self.sentences: dict[str, list[str]] = {}
        self.skipped += self.manifest.get("skipped_files", [])
        for rel, entry in sorted(self.manifest["shards"].items()):
            self._add_shard(rel, entry["dir"])

    def _add_shard(self, rel: str, name: str) -> None:
        meta = json.loads((self.out / "shards" / name / "meta.json").read_text())
        vmeta = meta["variants"][self.variant.key]
        first = 0
        for row, (c, m) in enumerate(zip(meta["cases"], vmeta["n_sentences"], strict=True)):
            ic = tdata.IndexedCase(
                rel, c["case_id"], tuple(c["labels"]), len(c["sentences"]), int(c["n_heatmaps"])
            )
            self.cases.append(ic)
            self.locs[ic.key] = _CaseLoc(name, row, first, m)
            self.sentences[ic.key] = list(c["sentences"][:m])
            first += m
        self.skipped += [{"file": rel, **p} for p in meta["problems"]]
        self.meta[name] = vmeta

    def index(self, sessions: Path) -> tdata.SessionIndex:
        """A :class:`SessionIndex` of the prepared cases (what the trainer reports and splits)."""
        return tdata.SessionIndex(
            folder=sessions,
            cases=list(self.cases),
            skipped=list(self.skipped),
            n_files=int(self.manifest.get("n_files", len(self.manifest["shards"]))),
        )


class PreparedDataset(tdata.SessionDataset):
    """:class:`SessionDataset` whose cases come from a prepared folder: the same items, without decoding.

    ``folder`` stays the session folder (evaluation reads records from it); the arrays are read by offset in
    whichever process asks (DataLoader workers included), so nothing large is pickled into the workers.
    """

    def __init__(self, prepared: PreparedFolder, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prepared = prepared
        self._rows: dict[tuple[str, str], NpyRows] = {}

    def _array(self, shard: str, name: str) -> NpyRows:
        arr = self._rows.get((shard, name))
        if arr is None:
            arr = NpyRows(self.prepared.out / "shards" / shard / name)
            self._rows[(shard, name)] = arr
        return arr

    def _arrays(self, i: int) -> tuple[tdata.IndexedCase, _CaseLoc, torch.Tensor, np.ndarray, np.ndarray]:
        case = self.cases[i]
        loc = self.prepared.locs[case.key]
        key = self.prepared.variant.key
        image = self._array(loc.shard, f"s{self.image_size}.image.npy").rows(loc.row, loc.row + 1)
        reading = self._array(loc.shard, f"{key}.reading.npy").rows(loc.row, loc.row + 1)[0]
        gaze = self._array(loc.shard, f"{key}.gaze.npy").rows(
            loc.first_sentence, loc.first_sentence + loc.n_sentences
        )
        return case, loc, torch.from_numpy(image), reading, gaze

    def sample(self, i: int) -> tdata.CaseSample:
        case, loc, image, reading, gaze = self._arrays(i)
        meta = self.prepared.meta[loc.shard]
        maps16 = self._array(loc.shard, f"{self.prepared.variant.key}.maps.npy").rows(
            loc.first_sentence, loc.first_sentence + loc.n_sentences
        )
        has = meta["has_map"][loc.row]
        return tdata.CaseSample(
            key=case.key,
            image01=image,
            letterbox=LetterboxTransform(**meta["letterbox"][loc.row]),
            sentences=self.prepared.sentences[case.key],
            gaze=gaze,
            heatmaps_sq=[m.astype(np.float32) if h else None for m, h in zip(maps16, has, strict=True)],
            labels=list(case.labels),
            reading=reading,
        )

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        epoch, i = item if isinstance(item, tuple) else (self.epoch, item)
        case, _, image, reading, gaze = self._arrays(i)
        sentences = self.prepared.sentences[case.key]
        return self.make_item(epoch, i, case.key, image, reading, gaze, sentences, list(case.labels))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_rows"] = {}  # headers are re-read in the worker
        return state


# ------------------------------------------------------------------------------------------------ CLI
def patch_grid_side(mcfg, image_size: int) -> int:
    """The patch-grid side of the config's image encoder at ``image_size`` (built once, random weights)."""
    import dataclasses

    from radgaze.model.encoders import ImageEncoder

    sized = dataclasses.replace(mcfg, image_size=image_size, image_pretrained=False)
    return int(ImageEncoder(sized).patch_grid)
