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


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the session (tests/pg_support.py); each test asks it for
    its own database with ``pg_server.new_database()``."""
    from pg_support import PgServer

    server = PgServer.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a new, empty PostgreSQL database for this test."""
    return pg_server.new_database()
