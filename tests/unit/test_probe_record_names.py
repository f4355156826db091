"""The reading probe's record names: settings that differ from the defaults show, exactly."""

from __future__ import annotations

import pytest

from .conftest import benchmark_module


@pytest.fixture(scope="module")
def probe():
    return benchmark_module("probe_reading_cpu")


@pytest.mark.parametrize(("lr", "text"), [(3e-4, "3e-4"), (1.5e-4, "1.5e-4"), (1e-3, "1e-3"), (2.5e-5, "2.5e-5")])
def test_learning_rates_in_names_are_exact(probe, lr: float, text: str) -> None:
    # Two learning rates must never share a name: 1.5e-4 rounded to one digit would read 2e-4.
    assert probe.short_float(lr) == text
    assert float(text) == lr
