"""Protocols: which annotation steps follow each dictated case, as data (TOML; REFLACX's is the default)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from radgaze.assets import asset_text
from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import SHAPE_KINDS, STEPS

DEFAULT_PROTOCOL = "reflacx"


@dataclass(frozen=True)
class Protocol:
    name: str
    steps: tuple[str, ...]  # the enabled steps, in STEPS order
    shape: str = "ellipse"  # what the localisation step draws: "ellipse" or "box"
    label_set: str = "reflacx"

    def has(self, step: str) -> bool:
        return step in self.steps


def load_protocol(path: str | Path | None = None) -> Protocol:
    """The protocol in TOML file ``path``, or the packaged REFLACX protocol when None."""
    if path is None:
        where = f"assets/annotation/{DEFAULT_PROTOCOL}_protocol.toml"
        text = asset_text("annotation", f"{DEFAULT_PROTOCOL}_protocol.toml")
    else:
        where = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as e:
            raise ConfigError(f"protocol {where}: cannot read it ({e.strerror or e})") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"protocol {where}: expected TOML, got a syntax error ({e})") from e
    return protocol_from_dict(data, where)


def protocol_from_dict(data: dict, where: str) -> Protocol:
    steps = data.get("steps", {})
    if not isinstance(steps, dict):
        raise ConfigError(f"protocol {where}: expected a [steps] table of step = true/false, got {steps!r}")
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise ConfigError(f"protocol {where}: expected steps among {list(STEPS)}, got {unknown}")
    bad = sorted(k for k, v in steps.items() if not isinstance(v, bool))
    if bad:
        raise ConfigError(f"protocol {where}: expected true or false for steps {bad}")
    shape = data.get("shape", "ellipse")
    if shape not in SHAPE_KINDS:
        raise ConfigError(f"protocol {where}: expected shape one of {list(SHAPE_KINDS)}, got {shape!r}")
    enabled = tuple(s for s in STEPS if steps.get(s, True))
    name = str(data.get("name") or Path(where).stem)
    return Protocol(name, enabled, shape, str(data.get("label_set", "reflacx")))
