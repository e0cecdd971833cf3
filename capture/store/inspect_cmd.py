"""``radgaze inspect PATH... [--json] [--words]``: what an image (DICOM/PNG/JPEG) or a session file (.h5) holds.

Exit status: 0 when every path was read (and every session is valid), 1 when a session opened but has
errors (they are printed), 2 when a path could not be read at all (one line on stderr per such path).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radgaze.capture.base.errors import RadgazeError, SessionFormatError

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze inspect",
        description="Print the metadata of an image (DICOM, PNG, JPEG: size, bit depth, photometric, window, "
        "pixel spacing, transfer syntax, sha256; no patient identifiers) or the summary and validation of a "
        "session file (.h5: schema version, validity, errors, per-case counts).",
        epilog="example: radgaze inspect chest.dcm --json   |   radgaze inspect ./sessions/*.h5",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image or session file(s)")
    p.add_argument("--json", action="store_true", help="print JSON (an object; a list for several paths)")
    p.add_argument(
        "--words",
        action="store_true",
        help="sessions: each case's transcript too, sentence by sentence (times in s from the case start, "
        "fixations, heatmap or none) and word by word (in --json: 'transcript' per case)",
    )
    return p


def is_session_file(path: Path) -> bool:
    """A session is an HDF5 file: judged by its signature, else by its suffix (so a damaged one still goes
    to the session reader, whose error names the problem)."""
    try:
        with path.open("rb") as fh:
            if fh.read(8) == _HDF5_MAGIC:
                return True
    except OSError:
        pass
    return path.suffix.lower() in (".h5", ".hdf5")


def describe(path: Path) -> dict:
    """JSON-ready description of one path; raises RadgazeError when it cannot be read."""
    if is_session_file(path):
        from radgaze.capture.store.summary import (
            describe_session,  # lazy: h5py is not needed to inspect an image
        )

        try:
            out = describe_session(path)
        except RadgazeError:
            raise
        except Exception as exc:  # noqa: BLE001 - h5py raises many types on foreign bytes; one line, no trace
            raise SessionFormatError(
                f"{path}: expected a radgaze session file, got {type(exc).__name__}: {exc}"
            ) from exc
        _add_ppd(path, out)
        return {"kind": "session", **out}
    from radgaze.capture.io.images import default_window, file_value, load_image

    img = load_image(path)
    center, width = default_window(img)
    return {
        "kind": "image",
        "path": str(path),
        **img.meta.to_dict(),
        "default_window": {"center": center, "width": width},
        "window_tags": None  # as the file's tags say them (MONOCHROME1: not mirrored)
        if img.meta.window_center is None
        else {"center": file_value(img.meta, img.meta.window_center), "width": img.meta.window_width},
        "pixel_dtype": str(img.pixels.dtype),
        "pixel_min": float(img.pixels.min()),
        "pixel_max": float(img.pixels.max()),
    }


PPD_NOT_RECORDED = "not recorded (computed from the display geometry as stored)"


def case_ppd(case, provenance: dict) -> dict:
    """A case's px/deg and where it came from: the case's own record, the file's, else computed from its display
    with the source said to be unrecorded (sessions written before px/deg had a recorded source)."""
    from radgaze.capture.io.display import ppd_record

    own = case.attrs.get("ppd")
    if isinstance(own, dict) and "source" in own:
        return own
    prov = provenance.get("ppd")
    source = prov.get("source") if isinstance(prov, dict) else provenance.get("ppd_source")
    return ppd_record(case.display, source or PPD_NOT_RECORDED)


def _add_ppd(path: Path, info: dict) -> None:
    """Each case summary gains ``ppd`` (x, y, source)."""
    from radgaze.capture.store.reader import SessionReader

    ids = [c.get("case_id") for c in info.get("cases", [])]
    try:
        with SessionReader(path) as reader:
            ppd = {
                cid: case_ppd(reader.case(cid), reader.provenance) for cid in ids if cid in reader.case_ids
            }
    except (RadgazeError, KeyError, OSError):  # a damaged case: describe_session has said so already
        return
    for c in info.get("cases", []):
        if c.get("case_id") in ppd:
            c["ppd"] = ppd[c["case_id"]]


def case_transcript(case) -> dict:
    """A case's words and sentences as inspect shows them: times in s from the case start (3 decimals)."""

    def rel(t) -> float:
        return round(float(t) - float(case.t_start), 3)

    w, s = case.words, case.sentences
    return {
        "sentences": [
            {
                "text": s.text[i],
                "t_start_s": rel(s.t_start[i]),
                "t_end_s": rel(s.t_end[i]),
                "n_fixations": int(s.n_fixations[i]),
                "heatmap": bool(int(s.heatmap_index[i]) >= 0),
            }
            for i in range(len(s))
        ],
        "words": [
            {"text": w.text[i], "t_start_s": rel(w.t_start[i]), "t_end_s": rel(w.t_end[i])}
            for i in range(len(w.text))
        ],
    }


def add_transcripts(path: Path, info: dict) -> None:
    """Each readable case summary gains ``transcript`` (:func:`case_transcript`)."""
    from radgaze.capture.store.reader import SessionReader

    try:
        with SessionReader(path) as reader:
            for c in info.get("cases", []):
                if c.get("case_id") in reader.case_ids:
                    c["transcript"] = case_transcript(reader.case(c["case_id"]))
    except (RadgazeError, KeyError, OSError):  # a damaged case: describe_session has said so already
        return


def _transcript_lines(t: dict) -> list[str]:
    """The transcript's lines: each sentence with its time span and gaze, then its words with their start."""
    lines = ["    transcript:"] if t["sentences"] or t["words"] else ["    transcript: no words"]
    for i, s in enumerate(t["sentences"]):
        gaze = f"{s['n_fixations']} fixations" if s["heatmap"] else "no fixations: no heatmap"
        lines.append(f"      {i + 1:2d}. {s['t_start_s']:7.2f}–{s['t_end_s']:7.2f} s  {s['text']}  ({gaze})")
    row = "      words:"
    for w in t["words"]:  # each word after its start time, never split from it at a line break
        item = f"  {w['t_start_s']:.2f} {w['text']}"
        if len(row) + len(item) > 110 and not row.endswith(":"):
            lines.append(row)
            row = "            "
        row += item
    return [*lines, row] if t["words"] else lines


def format_text(info: dict) -> str:
    """Human-readable lines for one description."""
    if info["kind"] == "session":
        head = [
            f"{info.get('path')}: session, schema {info.get('schema_version')}, "
            f"{'valid' if info.get('valid') else 'INVALID'}, {len(info.get('cases', []))} case(s), "
            f"{_mb(info.get('file_bytes', 0))} on disk"
        ]
        head += [f"  error: {e}" for e in info.get("errors", [])]
        for c in info.get("cases", []):
            head += _case_lines(c)
        return "\n".join(head)
    spacing, window = info["pixel_spacing_mm"], info["default_window"]
    ts = info["transfer_syntax"]
    lines = [
        f"{info['path']}: {info['source_format'].upper()} image",
        f"  size            {info['width']} x {info['height']} px, {info['bits_stored']} bits stored",
        f"  photometric     {info['photometric']} (pixels loaded as higher = brighter)",
        f"  pixels          {info['pixel_dtype']}, {info['pixel_min']:g} .. {info['pixel_max']:g}",
        "  window (tags)   "
        + (
            f"center {info['window_tags']['center']:g}, width {info['window_tags']['width']:g}"
            if info.get("window_tags")
            else "none"
        ),
        f"  default window  center {window['center']:g}, width {window['width']:g}"
        + (" (in the loaded, inverted values)" if info.get("file_mirror") is not None else ""),
        "  pixel spacing   "
        + (f"{spacing[0]:g} x {spacing[1]:g} mm (row x column)" if spacing else "unknown"),
    ]
    if info["modality"]:
        lines.append(f"  modality        {info['modality']}")
    if ts:
        lines.append(f"  transfer syntax {info['transfer_syntax_name'] or 'unknown'} ({ts})")
    if info["voi_lut"]:
        lines.append(
            f"  VOI LUT         {info['voi_lut']['entries']} entries from {info['voi_lut']['first_mapped']:g}"
        )
    lines.append(f"  sha256          {info['sha256']}")
    lines += [f"  note: {n}" for n in info["notes"]]
    return "\n".join(lines)


def _case_lines(c: dict) -> list[str]:
    """A session case's summary lines (counts, annotation, transcript correction or retranscription)."""
    lines = [
        f"  case {c.get('case_id')}: {c.get('duration_s')} s, {c.get('gaze_samples')} gaze samples, "
        f"{c.get('fixations')} fixations, {c.get('words')} words, {c.get('sentences')} sentences, "
        f"{c.get('heatmaps')} heatmaps"
    ]
    if c.get("transcript") is not None:
        lines += _transcript_lines(c["transcript"])
    if c.get("ppd"):
        p = c["ppd"]
        lines.append(f"    px/deg {p['x']:.2f} x {p['y']:.2f} ({p['source']})")
    if c.get("annotation"):
        a = c["annotation"]
        lines.append(
            f"    annotation: labels {', '.join(a['labels']) or 'none'}; {a['shapes']} shape(s); "
            f"chest box {'yes' if a['chest_box'] else 'no'}; steps {' > '.join(a['confirmed_steps'])}"
        )
    if (c.get("transcript_correction") or {}).get("retranscribed"):
        lines.append(_retranscribed_line(c))
    elif c.get("transcript_correction"):
        t = c["transcript_correction"]
        lines.append(
            f"    transcript corrected: {t['edits']} edit(s) in {t['saves']} save(s) of "
            f"{t['recognised_words']} recognised words; {t['recomputed_heatmaps']} heatmap(s) recomputed; "
            f"sentences and heatmaps from the {c.get('heatmaps_from')} words"
        )
    return lines + _dataset_lines(c.get("datasets", {}))


def _retranscribed_line(case: dict) -> str:
    """The inspect line of a case whose words were re-recognised: by the recorder's case pass (the case's audio
    decoded whole once it closed) or by ``radgaze retranscribe``."""
    t = case["transcript_correction"]
    asr = t["retranscribed"]
    how = "decoded whole at the case's end (case pass)" if asr.get("pass") == "case" else "retranscribed"
    return (
        f"    transcript {how} with {asr.get('model')} (beam {asr.get('beam_size')}, {asr.get('device')}): "
        f"{case.get('words')} words, {t['recognised_words']} live words kept (their WER against the new "
        f"{asr.get('live_wer')}); {t['recomputed_heatmaps']} heatmap(s) recomputed; sentences and heatmaps from "
        f"the {case.get('heatmaps_from')} words"
    )


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.3f} MB"


def _dataset_lines(datasets: dict[str, dict]) -> list[str]:
    """One line per non-empty dataset: stored size, data size, ratio, filters (largest first)."""
    rows = sorted(datasets.items(), key=lambda kv: -kv[1]["stored_bytes"])
    lines = []
    width = max([15, *(len(name) for name, _ in rows)])
    for name, d in rows:
        if d["data_bytes"] == 0:
            continue
        ratio = d["data_bytes"] / d["stored_bytes"] if d["stored_bytes"] else float("nan")
        filters = "+".join(d["filters"]) or "uncompressed"
        lines.append(
            f"    {name:{width}s} {_mb(d['stored_bytes']):>12s} stored, {_mb(d['data_bytes']):>12s} data "
            f"({ratio:.1f}x, {d['dtype']}, {filters})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    infos: list[dict] = []
    status = 0
    for path in args.paths:
        try:
            info = describe(path)
        except RadgazeError as exc:
            print("radgaze inspect: " + " ".join(str(exc).split()), file=sys.stderr)
            status = 2
            continue
        if info["kind"] == "session" and args.words:
            add_transcripts(path, info)
        if info["kind"] == "session" and not info.get("valid", False):
            status = max(status, 1)
        infos.append(info)
        if not args.json:
            print(format_text(info))
    if args.json and infos:
        print(json.dumps(infos[0] if len(args.paths) == 1 else infos, indent=2, default=str))
    return status
