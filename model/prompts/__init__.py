"""Prompt data files (JSON) for radgaze.model.zeroshot; a package so wheels carry them as package data."""
