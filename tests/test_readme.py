"""The README is generated where it can be: the source table must match the catalogue."""

from __future__ import annotations

import os
import re

from td_graph_plugin.cli.catalogue_view import README_END, README_START, render_sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


def test_source_table_matches_catalogue(catalogue):
    text = readme()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    assert text[start:end] == render_sources(catalogue, "markdown"), (
        "README source table drifted: regenerate it with `td-graph sources --format markdown`"
    )


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    text = readme()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    commands = [l for l in block.splitlines() if l and not l.startswith("#")]
    assert commands[0].endswith("td-graph demo")
    assert commands[1] == "bash scripts/test.sh"
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        assert "exec bash scripts/test.sh\n" in fh.read()
