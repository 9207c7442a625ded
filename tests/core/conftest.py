"""Shared fixtures for the core tests; the small real domain lives in arithmetic_domain.py."""

import pytest
from arithmetic_domain import ArithmeticDomain, Target, tagged  # noqa: F401  (re-exported for older imports)


@pytest.fixture
def arithmetic():
    return ArithmeticDomain()
