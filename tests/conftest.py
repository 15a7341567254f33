"""Shared fixtures: a thread-leak guard and a private HOME so no test touches real files."""

from __future__ import annotations

import gc
import threading

import pytest


@pytest.fixture(autouse=True)
def _no_thread_leaks():
    before = threading.active_count()
    yield
    gc.collect()
    assert threading.active_count() == before, "the test left a thread running"


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
    ):
        monkeypatch.setenv(name, str(home / sub))
    yield home
