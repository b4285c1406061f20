"""NDJSON file output that holds each record exactly once across kill -9 and restart.

The byte offset after each page is committed in the same state transaction as the page's
checkpoint.  On start, complete records past that offset (pages whose checkpoint never
committed) are kept and handed to the sink as ``recovered`` so their keys are adopted into the
state (see ``outputs.recovery``) — the file never shrinks under a tailer such as Filebeat.
Only an incomplete last line is cut: no tailer reads a line before its newline.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

from ..errors import OutputError

__all__ = ["FileOutput"]

log = logging.getLogger(__name__)


class FileOutput:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.name = "file:" + self.path
        self._fh = None
        self._pos = 0
        self.recovered: list[bytes] = []

    def open(self, committed_position: int | None) -> None:
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise OutputError(f"output.path {self.path}: folder {folder} does not exist")
        try:
            fh = open(self.path, "ab+")
        except OSError as exc:
            raise OutputError(f"cannot open output file {self.path}: {exc.strerror}") from None
        size = fh.seek(0, os.SEEK_END)
        if committed_position is None:
            committed_position = size  # a file we never wrote: keep what is there
        self.recovered = []
        self._committed = committed_position
        if size > committed_position:
            fh.seek(committed_position)
            tail = fh.read()
            complete, _, partial = tail.rpartition(b"\n")
            if partial:
                log.warning("output file %s: cutting an incomplete last line (%d bytes)", self.path, len(partial))
                fh.truncate(committed_position + (len(complete) + 1 if complete or tail.startswith(b"\n") else 0))
            self.recovered = [line + b"\n" for line in complete.split(b"\n") if line.strip()] if complete else []
        elif size < committed_position:
            log.warning(
                "output file %s is shorter than the committed offset (%d < %d): it was rotated "
                "or truncated outside td-graph; appending from its end",
                self.path,
                size,
                committed_position,
            )
        self._pos = fh.seek(0, os.SEEK_END)
        self._fh = fh

    def discard_recovered(self) -> None:
        """Cut the recovered tail instead (no adopter: those pages are collected again)."""
        if self._fh is not None and self.recovered:
            log.warning("output file %s: dropping %d records written after the last checkpoint; "
                        "they are collected again", self.path, len(self.recovered))
            self._fh.truncate(self._committed)
            self._pos = self._fh.seek(0, os.SEEK_END)
            self.recovered = []

    @property
    def position(self) -> int:
        return self._pos

    def write(self, lines: Sequence[bytes]) -> int | None:
        if self._fh is None:
            raise OutputError("file output used before open()")
        if lines:
            try:
                self._fh.write(b"".join(lines))
                self._fh.flush()
            except OSError as exc:
                # Put the file back where the state says it is, so nothing half-written stays.
                try:
                    self._fh.truncate(self._pos)
                except OSError:
                    pass
                raise OutputError(f"cannot write output file {self.path}: {exc.strerror}") from None
            self._pos = self._fh.tell()
        return self._pos

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError:
                pass
            self._fh.close()
            self._fh = None
