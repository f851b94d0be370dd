"""Ray Data's console settings: off in a log, Ray's own in a terminal or when asked for."""

from __future__ import annotations

import io

import pytest
from ray.data import DataContext

from hyperrep_ray.runtime import DEFAULTS_ENV, apply_data_settings


@pytest.fixture
def fresh_context(monkeypatch):
    """A DataContext of Ray's defaults as the current one, restored afterwards."""
    ctx = DataContext()
    monkeypatch.setattr(DataContext, "get_current", staticmethod(lambda: ctx))
    monkeypatch.delenv(DEFAULTS_ENV, raising=False)
    return ctx


def test_a_log_gets_no_progress_blocks_or_start_lines(fresh_context, monkeypatch):
    assert fresh_context.enable_progress_bars and fresh_context.print_on_execution_start
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal, as under ray job submit
    assert apply_data_settings() is True
    assert not fresh_context.enable_progress_bars and not fresh_context.print_on_execution_start


def test_ray_defaults_stay_when_asked_for(fresh_context, monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setenv(DEFAULTS_ENV, "1")
    assert apply_data_settings() is False
    assert fresh_context.enable_progress_bars and fresh_context.print_on_execution_start
