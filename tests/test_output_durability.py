"""The file output and the state under failure: a full disk, a failed commit, power loss,
a truncated or rotated file, a second writer, file modes (issue 13 items 6, 11 and Low).

Faults are injected deterministically: a file size limit in a child process (RLIMIT_FSIZE with
SIGXFSZ ignored makes a write past it fail with EFBIG after a short write), a state whose
commit raises, a child process that holds a lock and says so before the parent tries.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

import output_support as osup
from td_graph_plugin.errors import OutputError, StateError, StateLocked
from td_graph_plugin.state import StateStore

HERE = os.path.dirname(os.path.abspath(__file__))


def _child(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(HERE, "output_support.py"), *args],
                          capture_output=True, text=True, timeout=60, **kw)


def _finish_and_count(state_path: str, out_path: str, total: int) -> None:
    """Restart as td-graph does (adopting any uncommitted tail), collect what is missing,
    then: the committed offset is the file's size and every record is in the file once."""
    sink = osup.open_sink(state_path, out_path)
    try:
        assert sink.state.output_position(sink.output.name) == os.path.getsize(out_path)
        osup.run_pages(sink, total, 4)
        assert sink.state.output_position(sink.output.name) == os.path.getsize(out_path)
    finally:
        osup.close_sink(sink)
    counts = osup.id_counts(osup.output_files(out_path))
    assert counts == {osup.record_id(i): 1 for i in range(total)}


# --- 13.6: a failed write or commit latches the sink ---------------------------------------------
def test_a_full_filesystem_leaves_no_torn_bytes_and_refuses_later_pages(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    child = _child("file-size-limit", out, db)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["first"] is not None and result["first"].startswith("OutputError"), result
    assert "File too large" in result["first"] and out in result["first"], result
    # The limit was lifted before page C: it is refused because of the first failure, not the disk.
    assert result["second"] is not None and result["second"].startswith("OutputError"), result
    assert "earlier failure" in result["second"] and "File too large" in result["second"], result
    data = open(out, "rb").read()
    # Page B's first line was complete when the limit struck: a tailer may have read it, so it
    # stays (adopted at the next start); the torn half of the second line is cut.
    assert data == b"".join(osup.line(i) for i in range(6))
    assert len(data) < result["limit"]
    assert result["committed"] == len(b"".join(osup.line(i) for i in range(5))), "no offset past the failed page"
    _finish_and_count(db, out, 12)


class _CommitFailsOnce(StateStore):
    """A state whose second commit raises, as a full or broken state disk would."""

    calls = 0

    def commit(self, c, *, output=None):  # type: ignore[override]
        type(self).calls += 1
        if type(self).calls == 2:
            raise StateError(f"cannot write state database {self.path}: disk I/O error (injected)")
        return super().commit(c, output=output)


def test_a_failed_commit_refuses_every_later_page_and_the_page_is_adopted_at_restart(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    _CommitFailsOnce.calls = 0
    sink = osup.open_sink(db, out, adopt=False, state=_CommitFailsOnce(db))
    osup.deliver(sink, range(0, 4))
    committed = os.path.getsize(out)
    with pytest.raises(StateError, match="injected"):
        osup.deliver(sink, range(4, 8))
    # Another job's page must not commit an offset past the page whose commit failed.
    with pytest.raises(OutputError, match="earlier failure.*injected"):
        osup.deliver(sink, range(8, 10))
    assert sink.state.output_position(sink.output.name) == committed
    data = open(out, "rb").read()
    assert data == b"".join(osup.line(i) for i in range(8)), "no torn bytes, nothing of the refused page"
    osup.close_sink(sink)
    _finish_and_count(db, out, 10)


# --- 13.11: power loss ---------------------------------------------------------------------------
def test_the_output_is_fdatasynced_before_the_page_checkpoint_commits(tmp_path, monkeypatch):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out, adopt=False)
    events: list[str] = []
    real_sync, real_commit = os.fdatasync, sink.state.commit
    inode = os.stat(out).st_ino

    def fdatasync(fd: int) -> None:
        events.append("sync output" if os.fstat(fd).st_ino == inode else "sync other")
        real_sync(fd)

    def commit(c, *, output=None):
        events.append("commit")
        return real_commit(c, output=output)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(sink.state, "commit", commit)
    osup.deliver(sink, [0, 1])
    osup.deliver(sink, [2])
    assert events == ["sync output", "commit", "sync output", "commit"]
    osup.close_sink(sink)


def test_the_state_syncs_its_write_ahead_log_on_every_commit(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    try:
        # https://www.sqlite.org/pragma.html#pragma_synchronous: 2 is FULL, which in WAL mode
        # syncs the WAL after each committed transaction (NORMAL, 1, may roll one back).
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        s.close()


def test_an_output_file_shorter_than_the_committed_offset_is_an_error(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out)
    osup.deliver(sink, range(0, 4))
    osup.close_sink(sink)
    size = os.path.getsize(out)
    os.truncate(out, size - len(osup.line(3)))  # the same file, shorter (copytruncate, lost writes)
    with pytest.raises(OutputError) as err:
        osup.open_sink(db, out)
    msg = str(err.value)
    assert out in msg and str(size) in msg and str(size - len(osup.line(3))) in msg
    assert "restore" in msg and "move it aside" in msg
    assert os.path.getsize(out) == size - len(osup.line(3)), "nothing appended past the hole"
    # Moved aside, the file is no longer td-graph's: a new one starts at the path.
    os.rename(out, out + ".truncated")
    sink = osup.open_sink(db, out)
    assert os.path.getsize(out) == 0 and sink.state.output_position(sink.output.name) == 0
    osup.deliver(sink, [4])
    assert open(out, "rb").read() == osup.line(4)
    osup.close_sink(sink)


def test_a_file_truncated_while_td_graph_runs_is_refused_before_the_next_page(tmp_path):
    """logrotate's copytruncate empties the file under td-graph: appending would write below
    what a tailer has read. The next page is refused instead."""
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out)
    osup.deliver(sink, range(0, 3))
    os.truncate(out, 0)
    with pytest.raises(OutputError, match="copytruncate"):
        osup.deliver(sink, [3])
    assert os.path.getsize(out) == 0
    osup.close_sink(sink)


def test_external_rotation_with_create_starts_the_new_file_from_zero(tmp_path):
    """logrotate renames the file to .1 and creates an empty one at the path (``create``): a
    new file (another inode), not a truncated one."""
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out)
    osup.deliver(sink, range(0, 3))
    osup.close_sink(sink)
    os.rename(out, out + ".1")
    open(out, "wb").close()
    sink = osup.open_sink(db, out)
    osup.deliver(sink, range(3, 5))
    assert sink.state.output_position(sink.output.name) == os.path.getsize(out)
    osup.close_sink(sink)
    assert open(out + ".1", "rb").read() == b"".join(osup.line(i) for i in range(3))
    assert open(out, "rb").read() == b"".join(osup.line(i) for i in range(3, 5))


def test_a_crash_between_an_external_rename_and_the_reopen_adopts_the_old_files_tail(tmp_path):
    """td-graph wrote a page into the file logrotate had just renamed, and died before its
    commit: at the next start the page is found at .1 and adopted, not written again."""
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out)
    osup.deliver(sink, range(0, 3))
    os.rename(out, out + ".1")
    open(out, "wb").close()
    sink.output.write([osup.line(i) for i in range(3, 6)])  # into the renamed file; no commit
    osup.close_sink(sink)  # the crash
    sink = osup.open_sink(db, out)
    assert osup.pending(sink.state, range(0, 8)) == [6, 7]
    osup.close_sink(sink)
    _finish_and_count(db, out, 8)
    assert osup.id_counts([out]) == {osup.record_id(i): 1 for i in (6, 7)}


def test_reopen_on_request_follows_an_external_rotation(tmp_path):
    """SIGHUP: the run loop calls ``request_reopen()``; the next page goes to the new file."""
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out)
    osup.deliver(sink, range(0, 3))
    os.rename(out, out + ".1")
    open(out, "wb").close()
    sink.request_reopen()
    osup.deliver(sink, range(3, 5))
    assert open(out + ".1", "rb").read() == b"".join(osup.line(i) for i in range(3))
    assert open(out, "rb").read() == b"".join(osup.line(i) for i in range(3, 5))
    assert sink.state.output_position(sink.output.name) == os.path.getsize(out)
    osup.close_sink(sink)
    _finish_and_count(db, out, 5)


# --- Low: modes and locks ------------------------------------------------------------------------
_MODES_CHILD = """
import os, sys
sys.path[:0] = [{root!r}, {tests!r}]
os.umask(0)  # so the modes seen are the ones td-graph asks for
import output_support as osup
sink = osup.open_sink({db!r}, {out!r})
osup.deliver(sink, [0])
print("delivered", flush=True)
sys.stdin.read()
osup.close_sink(sink)
"""


def test_output_and_state_files_are_created_for_owner_and_group_only(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    code = _MODES_CHILD.format(root=os.path.dirname(HERE), tests=HERE, db=db, out=out)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "delivered", child.stderr.read()
        modes = {os.path.basename(p): stat.S_IMODE(os.stat(p).st_mode) for p in
                 (out, db, db + "-wal", db + "-shm", db + ".lock")}
    finally:
        child.stdin.close()
        child.wait(30)
    assert modes == {"records.ndjson": 0o640, "s.db": 0o600, "s.db-wal": 0o600, "s.db-shm": 0o600,
                     "s.db.lock": 0o600}
    lock = [p for p in os.listdir(tmp_path) if p.endswith(".lock") and "records" in p]
    assert lock and all(stat.S_IMODE(os.stat(tmp_path / p).st_mode) & 0o037 == 0 for p in lock)


def test_the_state_is_locked_on_its_real_path(tmp_path):
    real = tmp_path / "s.db"
    link = tmp_path / "link.db"
    first = StateStore(str(real))
    link.symlink_to(real)
    try:
        with pytest.raises(StateLocked):
            StateStore(str(link))
    finally:
        first.close()
    StateStore(str(link)).close()


@pytest.mark.parametrize("via_symlink", [False, True])
def test_a_second_process_writing_the_same_output_file_is_refused(tmp_path, via_symlink):
    out = str(tmp_path / "records.ndjson")
    child = subprocess.Popen([sys.executable, os.path.join(HERE, "output_support.py"), "hold-lock", out],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked", child.stderr.read()
        mine = out
        if via_symlink:
            os.makedirs(tmp_path / "elsewhere")
            os.symlink(tmp_path, tmp_path / "elsewhere" / "logs")
            mine = str(tmp_path / "elsewhere" / "logs" / "records.ndjson")
        with pytest.raises(OutputError, match=rf"another td-graph process \(pid {child.pid};"):
            osup.open_sink(str(tmp_path / "s.db"), mine, adopt=False)
    finally:
        child.stdin.close()
        child.wait(30)
    assert child.returncode == 0, child.stderr.read()
    sink = osup.open_sink(str(tmp_path / "s2.db"), out, adopt=False)  # released with the process
    osup.close_sink(sink)

