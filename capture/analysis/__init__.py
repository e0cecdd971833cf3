"""Analyses over recorded (or synthetic) sessions: ``radgaze analyze`` (``cli.py``); the maths they use
lives in ``capture/gazemath`` (no store), the session reading here."""
