"""NDJSON file output that holds each record exactly once across kill -9, power loss and rotation.

The byte offset after each page, and the identity of the file it is in, are committed in the
same state transaction as the page's checkpoint, after the page is on disk (``fdatasync``).  On
start (``fileopen``), complete records past that offset (pages whose checkpoint never committed)
are kept and handed to the sink as ``recovered`` so their keys are adopted into the state (see
``collector.recovery``) — the file never shrinks under a tailer such as Filebeat.  Only an
incomplete last line is cut: no tailer reads a line before its newline.

With ``max_bytes`` the file is rotated by td-graph between pages (``rotation``); an operator who
rotates it externally (logrotate ``create``, never ``copytruncate``) sends SIGHUP, and the run
loop calls ``request_reopen()``: the next page goes to the new file at the path.  One process
writes a file: a second one is refused (``fileio.lock_output``).
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

from ..errors import OutputError
from .fileio import crash_point, file_id, lock_output, open_append, stat_or_none, sync, unlock, write_all
from .fileopen import open_output
from .rotation import rotate_files

__all__ = ["FileOutput"]

log = logging.getLogger(__name__)


class FileOutput:
    """``max_bytes``: rotate before a page that would take the file past it (a page is never
    split: a single page larger than that gets a file of its own); ``keep``: rotated files kept."""

    def __init__(self, path: str, *, max_bytes: int | None = None, keep: int = 10) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise OutputError(f"output.max_bytes is {max_bytes}: it must be a positive size (or unset: no rotation)")
        if max_bytes is not None and keep < 1:
            raise OutputError(f"output.keep is {keep}: rotation keeps at least 1 file (the one just rotated, "
                              "which a tailer may still be reading)")
        self.path = os.path.abspath(path)
        self.name = "file:" + self.path
        self.max_bytes = max_bytes
        self.keep = keep
        self.recovered: list[bytes] = []
        self._fd: int | None = None
        self._lock: int | None = None
        self._file_id = ""
        self._pos = 0
        self._cuts: list[tuple[str, int]] = []
        self._reopen = False

    # --- lifecycle ---------------------------------------------------------------------------
    def open(self, committed_position: int | None, committed_file: str | None = None) -> None:
        """Resume after ``committed_position`` in the file ``committed_file`` (device:inode)."""
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise OutputError(f"output.path {self.path}: folder {folder} does not exist")
        self._lock = lock_output(self.path)
        try:
            opened = open_output(self.path, committed_position, committed_file)
        except BaseException:
            unlock(self._lock)
            self._lock = None
            raise
        self._fd, self._file_id, self._pos = opened.fd, opened.file_id, opened.position
        self.recovered, self._cuts = opened.recovered, opened.cuts

    def discard_recovered(self) -> None:
        """Cut the recovered tail instead (no adopter: those pages are collected again)."""
        if self._fd is None or not self.recovered:
            return
        log.warning("output file %s: dropping %d records written after the last checkpoint; "
                    "they are collected again", self.path, len(self.recovered))
        try:
            for path, offset in self._cuts:
                os.truncate(path, offset)
            self._pos = os.fstat(self._fd).st_size
        except OSError as exc:
            raise OutputError(f"cannot cut output file {self.path}: {exc.strerror}") from None
        self.recovered, self._cuts = [], []

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fdatasync(self._fd)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            unlock(self._lock)
            self._lock = None

    # --- where it is -------------------------------------------------------------------------
    @property
    def position(self) -> int:
        return self._pos

    @property
    def file_id(self) -> str:
        """The identity (device:inode) of the file being written, committed with the offset."""
        return self._file_id

    # --- writing -----------------------------------------------------------------------------
    def write(self, lines: Sequence[bytes]) -> int:
        """Append a page, on disk before this returns; rotate first if it would not fit."""
        if self._fd is None:
            raise OutputError("file output used before open()")
        data = b"".join(lines)
        if not data:
            return self._pos
        self._check_unchanged()
        rotated = (self.max_bytes is not None and 0 < self._pos and self._pos + len(data) > self.max_bytes
                   and self._path_is_ours())
        if rotated:
            self._rotate()
        try:
            write_all(self._fd, data, self.path, self._pos)
        except OutputError:
            self._pos = os.fstat(self._fd).st_size  # the complete lines kept, if any
            raise
        self._pos += len(data)
        sync(self._fd, self.path)
        if rotated:
            crash_point("rotate:after_write")
        return self._pos

    def _check_unchanged(self) -> None:
        """The file must end where td-graph's last page did: anything else means another
        program truncated it (copytruncate) or writes to it, and appending would corrupt it."""
        size = os.fstat(self._fd).st_size  # type: ignore[arg-type]
        if size < self._pos:
            raise OutputError(
                f"output file {self.path} was truncated while td-graph was writing it ({size} < {self._pos} bytes): "
                "logrotate's copytruncate does this; rotate with create and postrotate kill -HUP instead (README). "
                f"Restore the file (its first {self._pos} bytes) or move it aside, then start td-graph again"
            )
        if size > self._pos:
            raise OutputError(
                f"output file {self.path} grew by {size - self._pos} bytes td-graph did not write: another program "
                "writes to it; give td-graph a file of its own"
            )

    def _path_is_ours(self) -> bool:
        """False while an external rotation waits for its SIGHUP: the path then names another
        file (or none yet), which td-graph must not rename; it reopens when asked instead."""
        st = stat_or_none(self.path)
        return st is not None and file_id(st) == self._file_id

    def _rotate(self) -> None:
        rotate_files(self.path, self.keep)
        fd = open_append(self.path)
        crash_point("rotate:after_create")
        old, self._fd = self._fd, fd
        st = os.fstat(fd)
        self._file_id, self._pos = file_id(st), st.st_size
        if old is not None:
            os.close(old)
        log.info("output file %s rotated (the previous one is %s.1; %d kept)", self.path, self.path, self.keep)

    # --- external rotation -------------------------------------------------------------------
    def switches_file(self, nbytes: int) -> bool:
        """Whether writing ``nbytes`` next may change the file written (a rotation, or a
        reopen asked for): the sink then lets every earlier page commit first (collector.sink)."""
        return self._reopen or (self.max_bytes is not None and 0 < self._pos and self._pos + nbytes > self.max_bytes)

    def request_reopen(self) -> None:
        """Ask for the path to be reopened before the next page (safe in a signal handler)."""
        self._reopen = True

    def reopen_if_requested(self) -> bool:
        """Between pages: follow an external rotation. True when a new file is now written."""
        if not self._reopen or self._fd is None:
            return False
        self._reopen = False
        st = stat_or_none(self.path)
        if st is not None and file_id(st) == self._file_id:
            return False  # not rotated (yet): keep writing the same file
        fd = open_append(self.path)
        old, self._fd = self._fd, fd
        os.close(old)
        st = os.fstat(fd)
        self._file_id, self._pos = file_id(st), st.st_size
        log.info("output file %s reopened (rotated outside td-graph)", self.path)
        return True
