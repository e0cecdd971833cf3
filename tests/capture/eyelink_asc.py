"""A stand-in for SR Research's edf2asc: an EyeLink recording (read from a real EDF) written as ASC text.

Written from the ASC layout SR Research documents (EyeLink 1000 Plus User Manual, "ASC file format") and that
the public ASC readers parse (pymovements ``gaze/_utils/parsing_eyelink.py``, eyelinker's ``read.asc``):
header lines ``** ...``; per recording block ``START <t> <EYES> SAMPLES EVENTS``, ``PRESCALER 1``,
``VPRESCALER 1``, ``PUPIL AREA``, ``EVENTS GAZE <EYES> RATE <hz> TRACKING CR FILTER 2`` and ``SAMPLES ...`` (with
``RES`` when resolution columns follow, as ``edf2asc -res`` writes), then sample lines ``<t>\\t<x>\\t<y>\\t<ps>``
per eye, ``\\t<xres>\\t<yres>`` with -res, then the flags (``...`` monocular, ``.....`` binocular; missing
positions ``   .``, missing pupil ``    0.0``), events at their end sample (``SFIX L <t>``, ``EFIX L <st> <et>
<dur> <axp> <ayp> <aps>``, ``ESACC L <st> <et> <dur> <sxp> <syp> <exp> <eyp> <ampl> <pv>``, ``EBLINK L <st>
<et> <dur>``), ``MSG\\t<t> <text>`` at their time, and ``END <t> \\tSAMPLES\\tEVENTS\\tRES\\t<xres>\\t<yres>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radgaze.capture.importers.eyelink_files import EVENT_BLINK, EVENT_FIXATION, EyeLinkRecording


def _num(v: float, fmt: str = "7.1f", missing: str = "   .") -> str:
    return missing if not np.isfinite(v) else format(v, fmt)


def _blocks(rec: EyeLinkRecording) -> list[tuple[int, int]]:
    """Sample index ranges of the recording blocks (a gap of more than 1.5 sample periods starts a new one)."""
    period_ms = 1000.0 / rec.rate_hz
    cuts = np.flatnonzero(np.diff(rec.t_ms) > 1.5 * period_ms) + 1
    edges = np.concatenate([[0], cuts, [rec.t_ms.size]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _sample_line(rec: EyeLinkRecording, i: int, res: bool) -> str:
    parts = [f"{rec.t_ms[i]:.0f}"]
    for k in range(len(rec.eyes)):
        parts += [_num(rec.x_px[i, k]), _num(rec.y_px[i, k]), _num(rec.pupil[i, k], missing="    0.0")]
    if res:
        parts += [_num(rec.res_ppd[i, 0], "7.2f"), _num(rec.res_ppd[i, 1], "7.2f")]
    parts.append("..." if len(rec.eyes) == 1 else ".....")
    return "\t".join(parts)


def _event_lines(rec: EyeLinkRecording, e: np.void) -> tuple[str, str]:
    eye = "L" if e["eye"] == 0 else "R"
    st, et = e["t_start_ms"], e["t_end_ms"]
    dur = et - st + 1000.0 / rec.rate_hz
    head = f"{st:.0f}\t{et:.0f}\t{dur:.0f}"
    if e["kind"] == EVENT_FIXATION:
        return f"SFIX {eye}   {st:.0f}", f"EFIX {eye}   {head}\t{_num(e['x_px'])}\t{_num(e['y_px'])}\t   1000"
    if e["kind"] == EVENT_BLINK:
        return f"SBLINK {eye} {st:.0f}", f"EBLINK {eye} {head}"
    amp = np.hypot(e["x_end_px"] - e["x_px"], e["y_end_px"] - e["y_px"]) / 40.0
    pos = "\t".join(_num(v) for v in (e["x_px"], e["y_px"], e["x_end_px"], e["y_end_px"]))
    return f"SSACC {eye}  {st:.0f}", f"ESACC {eye}  {head}\t{pos}\t{_num(amp, '5.2f')}\t    100"


def write_asc(rec: EyeLinkRecording, path: Path, *, res: bool = True, end_res: bool = True) -> Path:
    """``rec`` as an ASC file; ``res``: per-sample resolution columns (edf2asc -res); ``end_res``: the END lines'
    RES fields (edf2asc always writes them; False makes a file without any px/deg)."""
    lines: list[tuple[float, int, str]] = []  # (time, order within the time, text)
    eyes = "\t".join(e.upper() for e in rec.eyes)
    res_token = "\tRES" if res else ""
    for a, b in _blocks(rec):
        t0, t1 = rec.t_ms[a], rec.t_ms[b - 1]
        head = [
            f"START\t{t0:.0f} \t{eyes}\tSAMPLES\tEVENTS",
            "PRESCALER\t1",
            "VPRESCALER\t1",
            f"PUPIL\t{rec.pupil_unit.upper()}",
            f"EVENTS\tGAZE\t{eyes}{res_token}\tRATE\t{rec.rate_hz:7.2f}\tTRACKING\tCR\tFILTER\t2",
            f"SAMPLES\tGAZE\t{eyes}{res_token}\tRATE\t{rec.rate_hz:7.2f}\tTRACKING\tCR\tFILTER\t2",
        ]
        lines += [(t0, 1 + k, text) for k, text in enumerate(head)]
        lines += [(rec.t_ms[i], 20, _sample_line(rec, i, res)) for i in range(a, b)]
        mean = np.nanmean(rec.res_ppd[a:b], axis=0)
        tail = f"\tRES\t{mean[0]:7.2f}\t{mean[1]:7.2f}" if end_res else ""
        lines.append((t1, 40, f"END\t{t1:.0f} \tSAMPLES\tEVENTS{tail}"))
    for e in rec.events:
        start, end = _event_lines(rec, e)
        lines += [(e["t_start_ms"], 10, start), (e["t_end_ms"], 30, end)]
    lines += [(t, 0, f"MSG\t{t:.0f} {text}") for t, text in zip(rec.msg_t_ms, rec.msg_text)]
    lines.sort(key=lambda r: (r[0], r[1]))
    header = [f"** CONVERTED FROM {rec.path.name} using a stand-in for edf2asc", "** TYPE: EDF_FILE BINARY"]
    path.write_text("\n".join(header + [text for _, _, text in lines]) + "\n", encoding="ascii")
    return path
