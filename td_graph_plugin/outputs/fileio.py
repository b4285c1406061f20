"""The system calls under the file output, each with the error an operator can act on.

Writes go straight to the file descriptor (no Python buffer that could keep a failed page's
bytes for the next one), are synced with ``fdatasync`` before the page's checkpoint commits, and
a failed write is cut back to its last complete line with ``ftruncate``: a tailer reads a line
only once it has its newline, so complete lines may already be shipped and are kept (the crash
adopter takes them over at the next start); the torn rest is never seen and is removed.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os

from ..errors import OutputError

__all__ = [
    "CRASH_ENV", "FILE_MODE", "crash_point", "file_id", "fsync_dir", "lock_output", "open_append",
    "stat_or_none", "sync", "unlock", "write_all",
]

log = logging.getLogger(__name__)

FILE_MODE = 0o640  # records are for the shipper's group, nobody else
# Test hook (tests/test_output_rotation.py): ``TD_GRAPH_TEST_CRASH_AT=rotate:after_rename``
# makes the process exit at once (as kill -9 would) when it reaches that point of a rotation.
CRASH_ENV = "TD_GRAPH_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Die here, without cleanup, when the crash tests ask for it (never set in production)."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


def file_id(st: os.stat_result) -> str:
    """A file's identity: device and inode. A path can name another file after a rotation."""
    return f"{st.st_dev}:{st.st_ino}"


def stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot read output file {path}: {exc.strerror}") from None


def open_append(path: str) -> int:
    """Open (creating with mode 0640) for appending; a new directory entry is synced at once,
    so the state never records a file that a power loss could take back."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise OutputError(f"cannot create output file {path}: {exc.strerror}") from None
        fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise OutputError(f"cannot open output file {path}: {exc.strerror}") from None
    return fd


def fsync_dir(folder: str) -> None:
    """Make renames and new files in ``folder`` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot sync output folder {folder}: {exc.strerror}") from None


def write_all(fd: int, data: bytes, path: str, start: int) -> None:
    """Append ``data`` whole at ``start`` (the file's end); on failure cut what was written back
    to its last complete line."""
    done = 0
    view = memoryview(data)
    try:
        while done < len(data):
            done += os.write(fd, view[done:])
    except OSError as exc:
        kept = data.rfind(b"\n", 0, done) + 1
        try:
            os.ftruncate(fd, start + kept)
        except OSError as cut:
            log.error("output file %s: cannot cut a torn line (%s); it is cut at the next start", path, cut.strerror)
        lines = data.count(b"\n", 0, kept)
        raise OutputError(
            f"cannot write output file {path}: {exc.strerror or errno.errorcode.get(exc.errno, exc.errno)}"
            + (f" (the page's first {lines} complete line(s) were written: kept, and adopted at the next start)"
               if lines else "")
            + "; free space (or raise the limit) and start td-graph again"
        ) from None


def sync(fd: int, path: str) -> None:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        raise OutputError(f"cannot sync output file {path} to disk: {exc.strerror}") from None


def lock_output(path: str) -> int:
    """One writer per output file: an flock on a hidden lock file beside the real file (stable
    across rotations, and a symlinked path finds the same lock)."""
    real = os.path.realpath(path)
    lock_path = os.path.join(os.path.dirname(real), "." + os.path.basename(real) + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise OutputError(f"cannot open output lock {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise OutputError(
            f"output file {path} is being written by another td-graph process (pid {owner}; lock {lock_path}): "
            "give each process its own output.path"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
