"""Annotation after dictation, the REFLACX protocol: labels with certainty, ellipses, chest box, per case."""
