"""Capture and session-store benchmarks (``radgaze bench capture|store``)."""
