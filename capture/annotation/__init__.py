"""Annotation after dictation (the REFLACX protocol): label sets and certainty scales, per-case protocols (data)."""
