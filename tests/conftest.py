"""Shared fixtures. The embedded model loads once per test session (load_model caches it)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded_model():
    from patternlang.models import load_model

    return load_model()
