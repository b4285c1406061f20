"""Helpers for the file output's durability and rotation tests.

Records are synthetic sign-ins in td-graph's envelope, so the crash adopter
(``collector.recovery``) understands them; ``run_pages`` delivers them page by page the way a
window collector does after a restart (it skips every record the state already has), so "each
record exactly once across the files" is checked against the real sink, output and state.

Run as a script, it is the child process of the scenarios that need their own process: a file
size limit (``RLIMIT_FSIZE``), a lock held by another process, a kill -9 inside a rotation.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
from datetime import datetime, timezone
from typing import Iterable, Sequence

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a child script
    sys.path.insert(0, ROOT)

from td_graph_plugin.collector import SyncSink  # noqa: E402
from td_graph_plugin.collector.recovery import make_adopter  # noqa: E402
from td_graph_plugin.config import parse_config  # noqa: E402
from td_graph_plugin.outputs import FileOutput  # noqa: E402
from td_graph_plugin.plugins import create_plugin_manager, load_catalogue  # noqa: E402
from td_graph_plugin.state import Commit, StateStore  # noqa: E402

TENANT = "t"
SOURCE = "audit_logs.sign_ins"
BASE = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc).timestamp()


def record_id(i: int) -> str:
    return f"r{i:05d}"


def line(i: int) -> bytes:
    """Record ``i`` as td-graph writes it (one NDJSON line, ~150 bytes)."""
    when = datetime.fromtimestamp(BASE + i, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rec = {"tenant": TENANT, "tenant_id": "00000000-0000-0000-0000-000000000001", "source": SOURCE,
           "id": record_id(i), "event_time": when, "data": {"id": record_id(i), "userPrincipalName": "a@b.c"}}
    return orjson.dumps(rec) + b"\n"


def key(i: int) -> tuple[str, float]:
    """The dedup key the window collector stores for record ``i``."""
    return record_id(i), BASE + i


def commit_for(ids: Sequence[int]) -> Commit:
    return Commit(TENANT, SOURCE, cursor={"last": max(ids) if ids else None}, seen=[key(i) for i in ids])


def make_config(state_path: str):
    return parse_config({"tenants": [{"name": TENANT, "tenant_id": "00000000-0000-0000-0000-000000000001",
                                      "client_id": "11111111-1111-1111-1111-111111111111", "client_secret": "x"}],
                         "state": {"path": state_path}}, env={})


def open_sink(state_path: str, out_path: str, *, adopt: bool = True, state: StateStore | None = None,
              **file_options) -> SyncSink:
    """A sink on a FileOutput, opened (crash recovery done) as ``td-graph run`` does it."""
    state = state if state is not None else StateStore(state_path)
    adopter = None
    if adopt:
        catalogue = load_catalogue(create_plugin_manager(load_entrypoints=False))
        adopter = make_adopter(make_config(state_path), catalogue)
    sink = SyncSink(FileOutput(out_path, **file_options), state, adopt=adopter)
    try:
        sink.open()
    except BaseException:
        state.close()
        raise
    return sink


def close_sink(sink: SyncSink) -> None:
    sink.close()
    sink.state.close()


def deliver(sink: SyncSink, ids: Sequence[int]) -> None:
    sink.deliver([line(i) for i in ids], commit_for(ids), lambda: None)


def pending(state: StateStore, ids: Iterable[int]) -> list[int]:
    """The ids a collector would still write: those whose key the state does not hold."""
    ids = list(ids)
    have = state.seen_keys(TENANT, SOURCE, [key(i) for i in ids])
    return [i for i in ids if record_id(i) not in have]


def run_pages(sink: SyncSink, total: int, page: int) -> None:
    """Deliver records 0..total-1 in pages of ``page``, skipping those already delivered."""
    for start in range(0, total, page):
        todo = pending(sink.state, range(start, min(start + page, total)))
        if todo:
            deliver(sink, todo)


def output_files(out_path: str) -> list[str]:
    """The output file and its rotated siblings (``.1``, ``.2`` ...), oldest first."""
    rotated = sorted((p for p in glob.glob(out_path + ".*") if p.rsplit(".", 1)[1].isdigit()),
                     key=lambda p: -int(p.rsplit(".", 1)[1]))
    return rotated + ([out_path] if os.path.exists(out_path) else [])


def id_counts(paths: Iterable[str]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for p in paths:
        with open(p, "rb") as fh:
            for raw in fh:
                assert raw.endswith(b"\n"), f"{p}: torn line {raw[:60]!r}"
                counts[orjson.loads(raw)["id"]] += 1
    return counts


# --- child scenarios -----------------------------------------------------------------------------
def _child_file_size_limit(out_path: str, state_path: str) -> dict:
    """Page A fits; page B crosses RLIMIT_FSIZE in the middle of its second line (EFBIG after
    a short write); page C comes after the limit is lifted and must still be refused."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    sink = open_sink(state_path, out_path, adopt=False)
    deliver(sink, range(0, 5))
    size = os.path.getsize(out_path)
    limit = size + len(line(5)) + len(line(6)) // 2
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    result: dict = {"limit": limit}
    try:
        deliver(sink, range(5, 10))
        result["first"] = None
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        result["first"] = f"{type(exc).__name__}: {exc}"
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    try:
        deliver(sink, range(10, 12))
        result["second"] = None
    except Exception as exc:  # noqa: BLE001
        result["second"] = f"{type(exc).__name__}: {exc}"
    result["committed"] = sink.state.output_position(sink.output.name)
    close_sink(sink)
    return result


def _child_hold_lock(out_path: str) -> None:
    out = FileOutput(out_path)
    out.open(None)
    print("locked", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    out.close()


def _child_rotate(out_path: str, state_path: str, max_bytes: int, keep: int, total: int, page: int) -> None:
    sink = open_sink(state_path, out_path, max_bytes=max_bytes, keep=keep)
    run_pages(sink, total, page)
    close_sink(sink)


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "file-size-limit":
        print(json.dumps(_child_file_size_limit(*args)), flush=True)
    elif what == "hold-lock":
        _child_hold_lock(*args)
    elif what == "rotate":
        _child_rotate(args[0], args[1], *(int(a) for a in args[2:]))
    else:
        raise SystemExit(f"unknown scenario {what}")
