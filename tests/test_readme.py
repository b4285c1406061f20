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
    assert commands[0] == "bash scripts/demo.sh"
    with open(os.path.join(ROOT, "scripts", "demo.sh"), encoding="utf-8") as fh:
        assert 'exec .venv/bin/td-graph demo "$@"' in fh.read()
    assert commands[1] == "bash scripts/test.sh"
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        assert "exec bash scripts/test.sh\n" in fh.read()


def test_host_snippets_in_readme_are_the_conf_files():
    """Each README snippet names its conf/ file on its first line; every line must be in it."""
    text = readme()
    blocks = re.findall(r"```[a-z]*\n# (conf/[^\s]+)[^\n]*\n(.*?)```", text, re.S)
    assert len(blocks) >= 6
    for path, body in blocks:
        with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
            conf = fh.read()
        for line in body.splitlines():
            if line.strip() and not line.lstrip().startswith(("source s_graph", "log {")):
                assert line.rstrip() in conf, f"README line {line!r} is not in {path}"


def test_readme_metric_table_is_the_contract():
    from td_graph_plugin.metrics import EXPORTED_METRICS

    text = readme()
    for name in EXPORTED_METRICS:
        assert f"`{name}`" in text
