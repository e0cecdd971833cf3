"""The exception types radgaze raises at its public boundaries.

Every error a user can cause (a bad file, a stream of the wrong shape, a missing device) is a
:class:`RadgazeError`; the CLI prints its message on one line and exits 2, never a traceback.
Messages say what was expected and what came.
"""

from __future__ import annotations


class RadgazeError(Exception):
    """Base of every user-facing radgaze error."""


class ImageLoadError(RadgazeError, ValueError):
    """An image file (DICOM, PNG, JPEG) could not be read as a single 2-D radiograph."""


class SessionFormatError(RadgazeError, ValueError):
    """A session file is missing, damaged, truncated, foreign, or of an unsupported schema version."""


class UnknownCaseError(RadgazeError, ValueError):
    """A session file has no case of the name asked for (the message lists the cases it has)."""


class StreamLayoutError(RadgazeError, ValueError):
    """An LSL stream (or imported recording) does not have the channel layout that was expected."""


class ImportFormatError(RadgazeError, ValueError):
    """A REFLACX / EGD-CXR / XDF source does not have the expected files or columns."""


class DeviceError(RadgazeError, RuntimeError):
    """A capture device (microphone, eye tracker) is absent or failed."""


class ConfigError(RadgazeError, ValueError):
    """A configuration file or option has an invalid value."""


class CheckpointError(RadgazeError, ValueError):
    """A model checkpoint directory is missing files or does not match its config."""


class StoreWriteError(RadgazeError, OSError):
    """A file could not be written (disk full, read-only folder, a write that failed mid-way)."""


class SessionBusyError(RadgazeError, FileExistsError):
    """A session file is being written by another writer (one writer per file)."""
