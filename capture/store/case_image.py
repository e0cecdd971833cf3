"""The image of a recorded case, found and verified: the one function every reader of pixels calls (train,
prepare, replay, review, annotate, the viewer's worklist).

A session stores its image by reference (a path, absolute or relative to the session file's folder) with the
file's sha256, width and height. Another file copied over the image, even of another size, would otherwise be
read without a word (issue 24): here the file's bytes are hashed and its size compared on every load, and a
mismatch is one :class:`ImageLoadError` line naming both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from radgaze.capture.errors import ImageLoadError
from radgaze.capture.io.images import LoadedImage, load_image
from radgaze.capture.records import ImageRef


def stored_image_path(image: Path, session: Path, *, keep: bool) -> str:
    """The image path a session stores: relative to the session's folder (enough to find it; the sha256
    verifies it), absolute only with ``keep`` (docs/privacy.md)."""
    if keep:
        return str(image.resolve())
    return os.path.relpath(image.resolve(), session.resolve().parent)


def resolve_case_image(ref: ImageRef, session_path: str | os.PathLike) -> Path:
    """A session's image reference: absolute as stored, else relative to the session file's folder (a
    relative path that exists from the working folder is taken as it is, as sessions written there store)."""
    p = Path(ref.path)
    if p.is_absolute() or p.exists():
        return p
    return Path(session_path).parent / p


def image_mismatch(ref: ImageRef, img: LoadedImage) -> str | None:
    """What differs between the image a case was recorded on and the file read now (None: the same)."""
    meta = img.meta
    if ref.sha256 and meta.sha256 != ref.sha256:
        return (
            f"the image the case was recorded on (sha256 {ref.sha256[:12]}…, {ref.width} x {ref.height} px), "
            f"got another file (sha256 {meta.sha256[:12]}…, {meta.width} x {meta.height} px)"
        )
    if (meta.width, meta.height) != (ref.width, ref.height):
        return f"an image of {ref.width} x {ref.height} px (as recorded), got {meta.width} x {meta.height} px"
    return None


def load_case_image(ref: ImageRef, session_path: str | os.PathLike) -> LoadedImage:
    """The case's image, loaded and verified against its stored sha256, width and height.

    Raises :class:`ImageLoadError` (one line) when the file is missing, unreadable or not the recorded one."""
    path = resolve_case_image(ref, session_path)
    img = load_image(path)
    problem = image_mismatch(ref, img)
    if problem is not None:
        raise ImageLoadError(f"{path}: expected {problem}; refusing to use it")
    return img


def case_image_problem(ref: ImageRef, session_path: str | os.PathLike) -> str | None:
    """Why a case's image cannot be used (missing, or not the file it was recorded on), without decoding it
    when the stored sha256 decides; None when it can (what an index of a training set checks up front)."""
    path = resolve_case_image(ref, session_path)
    if not path.is_file():
        return f"image {path} is missing"
    if ref.sha256:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != ref.sha256:
            return (
                f"image {path}: expected the image the case was recorded on (sha256 {ref.sha256[:12]}…), "
                f"got another file (sha256 {digest[:12]}…)"
            )
        return None
    try:
        load_case_image(ref, session_path)
    except ImageLoadError as exc:
        return str(exc)
    return None
