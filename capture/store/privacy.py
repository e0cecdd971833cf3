"""What a session or an export keeps of where its data came from (docs/privacy.md): by default nothing that
names a person, a machine or a folder.

File names of radiographs often carry a patient's name or record number (``DOE_JOHN_MRN123456.dcm``), and
absolute paths carry user names and hospital folder layouts. So by default a session's provenance keeps no
host name, audio source or source folder (:func:`scrub_provenance`; ``--keep-provenance-paths`` keeps them), a recorded
case is named from its image's content hash, not its file name (:func:`opaque_case_id`; ``--keep-names``), and
an export names images by hash and sessions by content digest (``--keep-names`` keeps the names).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

WITHHELD = "withheld (--keep-provenance-paths keeps it)"
# provenance keys whose values name a machine or a file wherever they appear
_NAMING_KEYS = frozenset({"hostname", "host", "audio_source", "audio_file", "xdf_file", "image_source_path"})


def scrub_provenance(obj: object) -> object:
    """``obj`` (JSON-like) with host names, audio sources and the absolute path of an import's ``source``
    replaced by :data:`WITHHELD` (model paths and the like are kept: they name no patient, no reading room)."""
    if isinstance(obj, dict):
        return {k: _scrubbed(k, v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_provenance(v) for v in obj]
    return obj


def _scrubbed(key: str, value: object) -> object:
    if key in _NAMING_KEYS and value not in (None, "", "none"):
        return WITHHELD
    if key == "source" and isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
        return WITHHELD
    return scrub_provenance(value)


def opaque_case_id(image_sha256: str) -> str:
    """A case id from the image's content, not its file name: ``case-`` + 12 hex digits of its sha256."""
    return f"case-{image_sha256[:12]}"


def image_reference(image_sha256: str) -> str:
    """How an export names an image by default: its content hash (``sha256:`` + 16 hex digits)."""
    return f"sha256:{image_sha256[:16]}" if image_sha256 else "sha256:unknown"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes: an export's name for a session file that carries no name."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
