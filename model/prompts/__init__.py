"""Prompt data files (JSON) for model.zeroshot; a package so wheels carry them as package data."""
