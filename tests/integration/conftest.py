"""Fixtures for the integration tier: the real TensorFlow 2.21 wheel in a cached venv.

The venv is built once (about 30 s of pip install) under ~/.cache/tf-stack-monitor-tests and
reused by later runs and CI; see tfvenv.py. Tests that break an install get a hard-link copy.
Skip the whole tier with `-m 'not integration'`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import tfvenv


@pytest.fixture(scope="session")
def tf_venv() -> Path:
    """The cached, healthy venv: never modify it (use `venv_copy`)."""
    return tfvenv.ensure_venv()


@pytest.fixture(scope="session")
def tf_python(tf_venv) -> Path:
    return tfvenv.venv_python(tf_venv)


@pytest.fixture
def venv_copy(tf_venv, tmp_path) -> Callable[[], Path]:
    """Make a throw-away hard-link copy of the TF venv; delete files in it, never write them."""
    made: list[Path] = []

    def make() -> Path:
        copy = tfvenv.clone_venv(tf_venv, tmp_path / f"copy{len(made)}")
        made.append(copy)
        return copy

    yield make
    for copy in made:
        tfvenv.remove_clone(copy)
