"""``td-graph conf list|show``: the example configurations (shippers, systemd, Prometheus,
Grafana, Elasticsearch, td-graph itself) from the installed package, so a wheel install has
them without a checkout.  The package's ``conf_files`` is the repository's ``conf/`` (a
symlink in the source tree, real files in the wheel): one copy of each file."""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["register", "examples", "select"]

PACKAGE_DIR = "conf_files"


def register(sub: argparse._SubParsersAction) -> None:
    conf = sub.add_parser(
        "conf",
        help="print the example configs (shippers, systemd, Prometheus, Grafana, td-graph.yaml)",
        description="The example configurations shipped with td-graph.",
    )
    actions = conf.add_subparsers(dest="conf_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="every example file, one GROUP/FILE per line")
    listing.set_defaults(func=_cmd_list)
    show = actions.add_parser(
        "show",
        help="print one example",
        description=(
            "Print an example to stdout: a group (syslog-ng, systemd, prometheus, grafana, fluent-bit, "
            "vector, logstash, filebeat, rsyslog, elasticsearch, td-graph) or one GROUP/FILE from "
            "`td-graph conf list`.  A group of several files prints each after a '==> GROUP/FILE <==' "
            "line; name the file to get it alone, e.g. `td-graph conf show systemd > td-graph.service`."
        ),
    )
    show.add_argument("name", help="a group or GROUP/FILE (see `td-graph conf list`)")
    show.set_defaults(func=_cmd_show)


def _root() -> Traversable:
    from importlib.resources import files  # only when asked: --help stays light

    return files("td_graph_plugin") / PACKAGE_DIR


def examples() -> dict[str, Traversable]:
    """``{"prometheus/alerts.yml": file, "td-graph.yaml": file, ...}``, sorted by name."""
    out: dict[str, Traversable] = {}
    for entry in _root().iterdir():
        if entry.is_dir():
            for item in entry.iterdir():
                if item.is_file():
                    out[f"{entry.name}/{item.name}"] = item
        elif entry.is_file():
            out[entry.name] = entry
    return dict(sorted(out.items()))


def _group(path: str) -> str:
    """A file's group: its folder, or a top-level file's name without its suffix."""
    return path.split("/", 1)[0] if "/" in path else path.rsplit(".", 1)[0]


def select(name: str) -> list[str]:
    """The example paths ``name`` (GROUP/FILE, a top-level file or a group) stands for."""
    known = examples()
    if name in known:
        return [name]
    return [path for path in known if _group(path) == name.strip("/")]


def _cmd_list(args: argparse.Namespace) -> int:
    for path in examples():
        print(path)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    paths = select(args.name)
    if not paths:
        known = examples()
        choices = sorted({_group(p) for p in known}) + list(known)
        close = difflib.get_close_matches(args.name, choices, n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        print(f"td-graph conf: no example named {args.name!r}{hint} (see `td-graph conf list`)", file=sys.stderr)
        return 2
    known = examples()
    for i, path in enumerate(paths):
        if len(paths) > 1:
            sys.stdout.write(f"{chr(10) if i else ''}==> {path} <==\n")
        sys.stdout.write(known[path].read_text(encoding="utf-8"))
    return 0
