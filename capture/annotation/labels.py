"""Label sets: the image-level labels a reader may choose and the certainty scale, as data (TOML).

The default is REFLACX's (``assets/annotation/reflacx_labels.toml``); a site replaces it with its own file of the
same shape (``--labels FILE``). Each label says whether it is exclusive (chosen alone: "Normal radiograph"),
needs a localisation when chosen, and takes free text ("Other").
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from radgaze.assets import asset_text
from radgaze.capture.base.errors import ConfigError

DEFAULT_LABEL_SET = "reflacx"
READER_LABEL_MIN_CERTAINTY = 3  # "Possibly" (~50 %) or surer: a label the reader gave counts as present


@dataclass(frozen=True)
class LabelSpec:
    name: str
    exclusive: bool = False  # chosen alone (choosing it clears the others, choosing another clears it)
    localise: bool = True  # needs at least one shape when chosen
    free_text: bool = False  # the reader writes what it is ("Other")


@dataclass(frozen=True)
class Certainty:
    level: int  # 1 (least certain) .. n (most certain)
    name: str
    probability: float
    note: str = ""

    def describe(self) -> str:
        return f"{self.name} ({self.note})" if self.note else self.name


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: tuple[LabelSpec, ...]
    certainties: tuple[Certainty, ...]  # highest level first
    source: str = ""

    def label(self, name: str) -> LabelSpec:
        for spec in self.labels:
            if spec.name == name:
                return spec
        raise ConfigError(
            f"label set {self.name!r}: expected one of {self.label_names()}, got label {name!r}"
        )

    def label_names(self) -> list[str]:
        return [spec.name for spec in self.labels]

    def certainty(self, level: int) -> Certainty:
        for c in self.certainties:
            if c.level == level:
                return c
        levels = sorted(c.level for c in self.certainties)
        raise ConfigError(f"label set {self.name!r}: expected a certainty level in {levels}, got {level!r}")

    def max_level(self) -> int:
        return max(c.level for c in self.certainties)


def load_label_set(path: str | Path | None = None) -> LabelSet:
    """The label set in TOML file ``path``, or the packaged REFLACX set when None."""
    if path is None:
        where, text = (
            f"assets/annotation/{DEFAULT_LABEL_SET}_labels.toml",
            asset_text("annotation", f"{DEFAULT_LABEL_SET}_labels.toml"),
        )
    else:
        where = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as e:
            raise ConfigError(f"label set {where}: cannot read it ({e.strerror or e})") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"label set {where}: expected TOML, got a syntax error ({e})") from e
    return label_set_from_dict(data, where)


def label_set_from_dict(data: dict, where: str) -> LabelSet:
    labels = tuple(_label_spec(item, where) for item in _list(data, "labels", where))
    certainties = tuple(_certainty(item, where) for item in _list(data, "certainties", where))
    _no_duplicates([s.name.casefold() for s in labels], "label", where)
    _no_duplicates([str(c.level) for c in certainties], "certainty level", where)
    _no_duplicates([c.name.casefold() for c in certainties], "certainty name", where)
    levels = sorted(c.level for c in certainties)
    if levels != list(range(1, len(levels) + 1)):
        raise ConfigError(f"label set {where}: expected certainty levels 1..{len(levels)}, got {levels}")
    order = tuple(sorted(certainties, key=lambda c: -c.level))
    return LabelSet(str(data.get("name") or Path(where).stem), labels, order, str(data.get("source", "")))


def _list(data: dict, key: str, where: str) -> list:
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise ConfigError(f"label set {where}: expected a non-empty list '{key}', got {items!r}")
    return items


def _label_spec(item: object, where: str) -> LabelSpec:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
        raise ConfigError(f'label set {where}: expected each label as {{ name = "..." }}, got {item!r}')
    unknown = set(item) - {"name", "exclusive", "localise", "free_text"}
    if unknown:
        raise ConfigError(f"label set {where}: label {item['name']!r} has unknown keys {sorted(unknown)}")
    return LabelSpec(
        item["name"].strip(),
        exclusive=bool(item.get("exclusive", False)),
        localise=bool(item.get("localise", True)),
        free_text=bool(item.get("free_text", False)),
    )


def _certainty(item: object, where: str) -> Certainty:
    ok = isinstance(item, dict) and isinstance(item.get("level"), int) and isinstance(item.get("name"), str)
    if not ok:
        raise ConfigError(
            f'label set {where}: expected each certainty as {{ level = N, name = "..." }}, got {item!r}'
        )
    p = item.get("probability", float("nan"))
    if not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ConfigError(
            f"label set {where}: certainty {item['name']!r} expected a probability in 0..1, got {p!r}"
        )
    return Certainty(int(item["level"]), item["name"].strip(), float(p), str(item.get("note", "")))


def _no_duplicates(names: list[str], what: str, where: str) -> None:
    seen: set[str] = set()
    dup = {n for n in names if n in seen or seen.add(n)}
    if dup:
        raise ConfigError(f"label set {where}: expected each {what} once, got duplicates {sorted(set(dup))}")


def present_labels(choices) -> list[str]:
    """The labels of an annotation (LabelChoice list) that count as present: certainty at least
    READER_LABEL_MIN_CERTAINTY, or not given (0), in the reader's order."""
    return [c.label for c in choices if not c.certainty or c.certainty >= READER_LABEL_MIN_CERTAINTY]
