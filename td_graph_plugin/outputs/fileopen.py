"""Where the file output resumes at start: which file is td-graph's, what in it is committed,
what was written after the last checkpoint (recovered, for the crash adopter), and when to refuse.

With the committed offset the state records the identity (device:inode) of the file it was
committed in, so a file that logrotate (``create``) or td-graph's own rotation put at the path
is told apart from a truncated one:

======================================  ===========================  ================================
the path holds                          meaning                      then
======================================  ===========================  ================================
the recorded file, at least as long     the normal case              bytes past the offset are the
as the committed offset                                              uncommitted tail (recovered)
the recorded file, shorter              truncated (copytruncate,     OutputError: restore it, or
                                        writes lost by the machine)  move it aside
another file or none, the recorded      a rotation after the last    ``.1``'s uncommitted tail and
one at ``<path>.1``                     commit (td-graph's or        everything in the new file are
                                        logrotate's)                 recovered; append to the new one
another file or none, the recorded      moved away, compressed or    warn; the path's file is new to
one nowhere near                        deleted                      td-graph and kept as it is
no committed offset                     td-graph never wrote here    keep what is there
======================================  ===========================  ================================

A new file is never a hole: a tailer following inodes reads it from its start.  Only a file
td-graph committed bytes in, found shorter, is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..errors import OutputError
from .fileio import file_id, open_append, stat_or_none

__all__ = ["Opened", "open_output", "shorter_error"]

log = logging.getLogger(__name__)


@dataclass
class Opened:
    fd: int
    file_id: str
    position: int
    recovered: list[bytes] = field(default_factory=list)
    cuts: list[tuple[str, int]] = field(default_factory=list)  # (file, offset) that drop ``recovered``


def shorter_error(path: str, size: int, committed: int) -> OutputError:
    return OutputError(
        f"output file {path} is shorter than what td-graph committed to it ({size} < {committed} bytes): "
        "records it delivered are missing (the file was truncated, e.g. by logrotate's copytruncate, or the "
        "machine lost writes). td-graph will not append past the hole. Either restore the file (its first "
        f"{committed} bytes), or move it aside (e.g. mv {path} {path}.truncated): td-graph then starts a new "
        "file, and records that were only in the missing part are not written again"
    )


def open_output(path: str, committed: int | None, recorded: str | None) -> Opened:
    """Open ``path`` for appending after the state's ``committed`` offset in file ``recorded``
    (None: a position stored before identities were, taken to be the file at the path)."""
    st = stat_or_none(path)
    if committed is None:
        return _as_it_is(path)
    if st is not None and (recorded is None or file_id(st) == recorded):
        fd = open_append(path)
        try:
            size = os.fstat(fd).st_size
            if size < committed:
                raise shorter_error(path, size, committed)
            recovered, position = _tail(fd, path, committed, size)
        except BaseException:
            os.close(fd)
            raise
        return Opened(fd, file_id(os.fstat(fd)), position, recovered, [(path, committed)] if recovered else [])
    rotated = path + ".1"
    st1 = stat_or_none(rotated)
    if recorded is not None and st1 is not None and file_id(st1) == recorded:
        return _after_rotation(path, rotated, committed)
    if recorded is None:
        log.warning("output file %s is gone (%d bytes were committed to it): starting a new file", path, committed)
    else:
        log.warning(
            "output file %s: the file td-graph last wrote (%d bytes committed) is no longer at the path or at %s "
            "(moved away, compressed or deleted); the file now at the path is new to td-graph. Records written "
            "after its last checkpoint, if it had any, are collected and written again",
            path, committed, rotated,
        )
    return _as_it_is(path)


def _as_it_is(path: str) -> Opened:
    fd = open_append(path)
    st = os.fstat(fd)
    return Opened(fd, file_id(st), st.st_size)


def _after_rotation(path: str, rotated: str, committed: int) -> Opened:
    """The recorded file was renamed to ``.1`` after its last commit: its tail past the offset
    and all of the file now at the path were written after that commit."""
    try:
        fd1 = os.open(rotated, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot open rotated output file {rotated}: {exc.strerror}") from None
    try:
        size1 = os.fstat(fd1).st_size
        if size1 < committed:
            raise shorter_error(rotated, size1, committed)
        older, _ = _tail(fd1, rotated, committed, size1)
    finally:
        os.close(fd1)
    fd = open_append(path)
    try:
        newer, position = _tail(fd, path, 0, os.fstat(fd).st_size)
    except BaseException:
        os.close(fd)
        raise
    if older or newer:
        log.warning("output file %s was rotated after the last checkpoint: %d records written since are in %s "
                    "and %d in the new file", path, len(older), rotated, len(newer))
    cuts = ([(rotated, committed)] if older else []) + ([(path, 0)] if newer else [])
    return Opened(fd, file_id(os.fstat(fd)), position, older + newer, cuts)


def _tail(fd: int, path: str, committed: int, size: int) -> tuple[list[bytes], int]:
    """The complete lines past ``committed`` and the new end; an incomplete last line (no
    tailer reads a line before its newline) is cut."""
    if size <= committed:
        return [], size
    try:
        tail = os.pread(fd, size - committed, committed)
        complete, newline, partial = tail.rpartition(b"\n")
        end = committed + len(complete) + len(newline)
        if partial:
            log.warning("output file %s: cutting an incomplete last line (%d bytes)", path, len(partial))
            os.ftruncate(fd, end)
            os.fsync(fd)
    except OSError as exc:
        raise OutputError(f"cannot read back output file {path}: {exc.strerror}") from None
    lines = [line + b"\n" for line in complete.split(b"\n") if line.strip()] if newline else []
    return lines, end
