"""Shared fixtures. Integration fixtures start the Graph simulator in-process."""

from __future__ import annotations

import os
import sys

import pytest

from td_graph_plugin.plugins import create_plugin_manager, load_catalogue

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def catalogue():
    return load_catalogue(create_plugin_manager(load_entrypoints=False))


@pytest.fixture
def td_graph_cmd():
    """The console script as this interpreter runs it (works without the venv's bin on PATH)."""
    return [sys.executable, "-m", "td_graph_plugin.cli.main"]
