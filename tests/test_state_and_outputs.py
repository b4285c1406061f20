"""State store guarantees and the exactly-once file output."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone

import pytest

from td_graph_plugin.collector import SyncSink
from td_graph_plugin.errors import StateError
from td_graph_plugin.outputs import FileOutput
from td_graph_plugin.state import SCHEMA_VERSION, Commit, StateStore


def test_second_process_on_same_state_is_refused(tmp_path):
    path = str(tmp_path / "s.db")
    first = StateStore(path)
    try:
        with pytest.raises(StateError, match="in use by another td-graph process"):
            StateStore(path)
    finally:
        first.close()
    StateStore(path).close()  # released on close


def test_corrupt_file_is_an_error_not_a_reset(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="corrupt or not a td-graph state file"):
        StateStore(str(path))
    assert path.read_bytes().startswith(b"this is not sqlite"), "the file is left untouched"


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StateError):
        StateStore(str(path))


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "s.db")
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer"):
        StateStore(path)


def test_commit_is_atomic_with_output_offset(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    s.commit(Commit("t", "src", cursor={"done": "x"}, seen=[("a", 1.0), ("b", 2.0)]), output=("file:/o", 42))
    assert s.cursor("t", "src") == {"done": "x"}
    assert s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0), ("c", 2.0)]) == {"a", "b"}
    assert s.seen_keys("t", "src", [("a", 2.0)]) == set(), "a key is matched with its event time"
    assert s.output_position("file:/o") == 42
    s.commit(Commit("t", "src", cursor={"done": "y"}, prune_seen_before=1.5))
    assert s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0)]) == {"b"}
    s.close()


class Boom(Exception):
    pass


def test_file_output_without_adopter_truncates_uncommitted_tail(tmp_path):
    state = StateStore(str(tmp_path / "s.db"))
    out_path = tmp_path / "records.ndjson"
    sink = SyncSink(FileOutput(str(out_path)), state)
    sink.open()
    sink.deliver([b'{"id":1}\n', b'{"id":2}\n'], Commit("t", "s", cursor={"n": 2}), lambda: None)
    # A crash between write and commit: the bytes are in the file, the state does not know them.
    sink.output.write([b'{"id":3}\n'])
    sink.close()
    state.close()
    state = StateStore(str(tmp_path / "s.db"))
    sink = SyncSink(FileOutput(str(out_path)), state)
    sink.open()
    assert out_path.read_bytes() == b'{"id":1}\n{"id":2}\n'
    sink.deliver([b'{"id":3}\n'], Commit("t", "s", cursor={"n": 3}), lambda: None)
    assert out_path.read_bytes().count(b"\n") == 3
    assert state.output_position(sink.output.name) == os.path.getsize(out_path)
    sink.close()
    state.close()


def test_file_output_missing_folder_is_clear(tmp_path):
    from td_graph_plugin.errors import OutputError

    with pytest.raises(OutputError, match="does not exist"):
        FileOutput(str(tmp_path / "nope" / "x.ndjson")).open(None)


def test_uncommitted_tail_is_adopted_not_cut(tmp_path, catalogue):
    """kill -9 between write and checkpoint: the file keeps the records (a tailer never sees
    it shrink) and the state adopts their keys so they are not written again."""
    import orjson

    from td_graph_plugin.config import parse_config
    from td_graph_plugin.collector.recovery import make_adopter

    config = parse_config({"tenants": [{"name": "t", "tenant_id": "00000000-0000-0000-0000-000000000001",
                                        "client_id": "11111111-1111-1111-1111-111111111111", "client_secret": "x"}],
                           "state": {"path": str(tmp_path / "s.db")}}, env={})
    state = StateStore(str(tmp_path / "s.db"))
    out_path = tmp_path / "records.ndjson"
    sink = SyncSink(FileOutput(str(out_path)), state)
    sink.open()
    sink.deliver([b'{"tenant":"t","source":"audit_logs.sign_ins","id":"a","event_time":"2026-11-26T10:00:00Z","data":{"id":"a"}}\n'],
                 Commit("t", "audit_logs.sign_ins", cursor={"done": None}), lambda: None)
    committed_size = out_path.stat().st_size
    tail = [
        {"tenant": "t", "source": "audit_logs.sign_ins", "id": "b", "event_time": "2026-11-26T10:01:00Z", "data": {"id": "b"}},
        {"tenant": "t", "source": "security.alerts_v2", "id": "al", "event_time": "2026-11-26T10:01:00Z",
         "data": {"id": "al", "lastUpdateDateTime": "2026-11-26T10:01:00Z"}},
        {"tenant": "t", "source": "directory.users", "id": "u1", "event_time": None, "data": {"id": "u1", "displayName": "U"}},
    ]
    sink.output.write([orjson.dumps(r) + b"\n" for r in tail] + [b'{"tenant":"t","sour'])  # torn last line
    sink.close()
    state.close()

    state = StateStore(str(tmp_path / "s.db"))
    sink = SyncSink(FileOutput(str(out_path)), state, adopt=make_adopter(config, catalogue))
    sink.open()
    data = out_path.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 4, "complete records kept, torn line cut"
    assert out_path.stat().st_size > committed_size
    assert state.output_position(sink.output.name) == out_path.stat().st_size
    t = datetime(2026, 11, 26, 10, 1, tzinfo=timezone.utc).timestamp()
    assert state.seen_keys("t", "audit_logs.sign_ins", [("b", t)]) == {"b"}
    assert state.seen_keys("t", "security.alerts_v2", [("al|2026-11-26T10:01:00Z", t)]) == {"al|2026-11-26T10:01:00Z"}
    from td_graph_plugin.collector.keys import content_hash

    assert state.object_hashes("t", "directory.users", ["u1"]) == {"u1": content_hash({"id": "u1", "displayName": "U"})}
    sink.close()
    state.close()


def test_v1_state_is_migrated_without_losing_dedup_keys(tmp_path):
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE checkpoints (tenant TEXT NOT NULL, source TEXT NOT NULL, cursor TEXT NOT NULL,
            updated_at REAL NOT NULL, last_success REAL, newest_event REAL, PRIMARY KEY (tenant, source));
        CREATE TABLE seen (tenant TEXT NOT NULL, source TEXT NOT NULL, key TEXT NOT NULL, event_time REAL NOT NULL,
            PRIMARY KEY (tenant, source, key)) WITHOUT ROWID;
        CREATE INDEX seen_by_time ON seen (tenant, source, event_time);
        INSERT INTO seen VALUES ('t', 'src', 'a', 1.0), ('t', 'src', 'b', 2.0), ('u', 'src', 'a', 1.0);
    """)
    db.commit()
    db.close()
    s = StateStore(str(path))
    try:
        assert s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0)]) == {"a", "b"}
        assert s.seen_keys("u", "src", [("a", 1.0), ("b", 2.0)]) == {"a"}
        assert s.count("seen", "t", "src") == 2
    finally:
        s.close()


def test_an_output_position_stored_before_file_identities_still_resumes(tmp_path):
    """A state file from before the output's file identity was recorded: the outputs table
    gains the column, and the position is taken to be in the file at the path."""
    path, out = tmp_path / "s.db", tmp_path / "records.ndjson"
    out.write_bytes(b'{"id":1}\n{"id":2}\n{"id":3}\n')  # 27 bytes, 18 of them committed
    db = sqlite3.connect(path)
    db.executescript(f"""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE outputs (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
        INSERT INTO outputs VALUES ('file:{out}', 18);
    """)
    db.commit()
    db.close()
    state = StateStore(str(path))
    try:
        assert state.output_mark("file:" + str(out)) == (18, None)
        sink = SyncSink(FileOutput(str(out)), state)
        sink.open()  # no adopter: the uncommitted third record is cut
        st = out.stat()
        assert out.read_bytes() == b'{"id":1}\n{"id":2}\n'
        assert state.output_mark("file:" + str(out)) == (18, f"{st.st_dev}:{st.st_ino}")
        sink.close()
    finally:
        state.close()


def test_a_refused_state_releases_its_lock(tmp_path):
    path = str(tmp_path / "s.db")
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    for _ in range(2):  # the second attempt meets the same refusal, not a lock of the first
        with pytest.raises(StateError, match="newer"):
            StateStore(path)
