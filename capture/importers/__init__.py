"""Importers of public gaze + dictation recordings into radgaze session files.

``import_reflacx`` (REFLACX), ``import_egd`` (EGD-CXR) and ``import_xdf`` (LabRecorder XDF with a gaze and a word
stream); ``radgaze import {reflacx,egd,xdf}`` is their command line (capture/importers/cli.py). Each module's
docstring states the layout it reads and the choices it makes where the dataset leaves them open.
"""

from radgaze.capture.importers.common import ImportResult


def __getattr__(name: str):  # the importers load lazily (pyxdf, image decoders)
    if name == "import_reflacx":
        from radgaze.capture.importers.reflacx import import_reflacx

        return import_reflacx
    if name == "import_egd":
        from radgaze.capture.importers.egd import import_egd

        return import_egd
    if name == "import_xdf":
        from radgaze.capture.importers.xdf import import_xdf

        return import_xdf
    raise AttributeError(name)


__all__ = ["ImportResult", "import_egd", "import_reflacx", "import_xdf"]
