"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only (the engine's loop)."""
    return "asyncio"
