"""The image of a recorded case, found and verified: the one function every reader of pixels calls (train,
prepare, replay, review, annotate, the viewer's worklist).

A session stores its image by reference (a path relative to the session file's folder, absolute only when asked:
:func:`stored_image_path`) with the file's sha256, width and height. An image that is not where the reference
points (the session or the images moved) is looked for by file name beside the session file and in the folders
of ``--images DIR`` / ``RADGAZE_IMAGES``, and taken only when its content has the stored sha256. Another file copied over the image, even of another size, would otherwise be
read without a word (issue 24): here the file's bytes are hashed and its size compared on every load, and a
mismatch is one :class:`ImageLoadError` line naming both.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from radgaze.capture.base.errors import ImageLoadError
from radgaze.capture.base.records import ImageRef
from radgaze.capture.io.images import LoadedImage, load_image

IMAGES_ENV = "RADGAZE_IMAGES"


def stored_image_path(image: Path, session: Path, *, keep: bool) -> str:
    """The image path a session stores: relative to the session's folder (enough to find it; the sha256
    verifies it), absolute only with ``keep`` (docs/privacy.md)."""
    if keep:
        return str(image.resolve())
    return os.path.relpath(image.resolve(), session.resolve().parent)


def image_search_dirs() -> list[Path]:
    """The folders a moved image is looked for in: ``RADGAZE_IMAGES`` (``os.pathsep``-separated; ``radgaze train
    --images DIR`` sets it, so DataLoader workers see it too)."""
    return [Path(p) for p in os.environ.get(IMAGES_ENV, "").split(os.pathsep) if p]


def add_images_option(parser) -> None:
    """``--images DIR`` (repeatable) for a command that reads session images: see :func:`use_image_dirs`."""
    parser.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="DIR",
        help="folder to look in (and below) for images that are not where their session says: found by file "
        f"name, used only with the recorded sha256 (repeatable; also {IMAGES_ENV})",
    )


def use_image_dirs(dirs: list[str | os.PathLike]) -> None:
    """Look for moved images in ``dirs`` too (before those already in ``RADGAZE_IMAGES``): set in the environment,
    so DataLoader workers, torchrun ranks and subprocesses look there as well."""
    if dirs:
        given = [os.path.abspath(d) for d in dirs]
        os.environ[IMAGES_ENV] = os.pathsep.join([*given, *(str(d) for d in image_search_dirs())])


def stored_location(ref: ImageRef, session_path: str | os.PathLike) -> Path:
    """Where the reference points: absolute as stored, else relative to the session file's folder (a relative
    path that exists from the working folder is taken as it is, as sessions written there store)."""
    p = Path(ref.path)
    if p.is_absolute() or p.exists():
        return p
    return Path(session_path).parent / p


def resolve_case_image(ref: ImageRef, session_path: str | os.PathLike) -> Path:
    """The file of a session's image: where the reference points, else (moved) a file of the same name beside
    the session file or in an :func:`image_search_dirs` folder (or below one) whose content has the stored
    sha256; else where the reference points (missing: the loader says so)."""
    stored = stored_location(ref, session_path)
    if stored.is_file():
        return stored
    found = find_moved_image(ref, [Path(session_path).parent, *image_search_dirs()])
    return stored if found is None else found


def find_moved_image(ref: ImageRef, folders: list[Path]) -> Path | None:
    """The first file named as ``ref``'s image in ``folders`` (each: beside, then below; search folders only
    below) with its stored sha256 (any such file when none is stored), or None."""
    name = Path(ref.path).name
    for k, folder in enumerate(folders):
        if not folder.is_dir():
            continue
        below = (
            _files_below(folder.resolve()).get(name, []) if k > 0 else []
        )  # beside the session: only there
        for cand in (folder / name, *below):
            if cand.is_file() and (not ref.sha256 or _sha256(cand) == ref.sha256):
                return cand
    return None


@functools.lru_cache(maxsize=8)
def _files_below(folder: Path) -> dict[str, list[Path]]:
    """File name -> the files of that name in ``folder`` and below, sorted (one walk per folder and process)."""
    out: dict[str, list[Path]] = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            out.setdefault(name, []).append(Path(root) / name)
    return {name: sorted(paths) for name, paths in out.items()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def not_found_message(ref: ImageRef, session_path: str | os.PathLike) -> str:
    """One line for an image found nowhere: where it was looked for and how to point radgaze at it."""
    dirs = ", ".join(str(d) for d in image_search_dirs()) or "none given"
    return (
        f"image {Path(ref.path).name} not found: not at {stored_location(ref, session_path)}, not beside the "
        f"session file, not in the image folders ({dirs}); pass --images DIR or set {IMAGES_ENV}"
    )


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
    if not path.is_file():
        raise ImageLoadError(not_found_message(ref, session_path))
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
        return not_found_message(ref, session_path)
    if ref.sha256:
        digest = _sha256(path)
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
