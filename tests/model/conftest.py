"""Shared fixtures for the model tests: one tiny EGMA model per session (built locally, no hub)."""

from __future__ import annotations

import pytest
import torch

from radgaze.model.config import ModelConfig
from radgaze.model.egma import EGMAModel


@pytest.fixture(scope="session")
def tiny_model() -> EGMAModel:
    torch.manual_seed(0)
    return EGMAModel(ModelConfig.preset("tiny")).eval()
