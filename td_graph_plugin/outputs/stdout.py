"""NDJSON on standard output, flushed per page: the form exec-style shippers read."""

from __future__ import annotations

import sys
from typing import BinaryIO, Sequence

from ..errors import OutputError

__all__ = ["StdoutOutput"]


class StdoutOutput:
    name = "stdout"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream

    def open(self, committed_position: int | None) -> None:
        if self._stream is None:
            self._stream = sys.stdout.buffer

    def write(self, lines: Sequence[bytes]) -> int | None:
        if not lines:
            return None
        try:
            assert self._stream is not None
            self._stream.write(b"".join(lines))
            self._stream.flush()
        except BrokenPipeError:
            raise OutputError("standard output was closed by the reader (broken pipe)") from None
        except OSError as exc:
            raise OutputError(f"cannot write to standard output: {exc.strerror}") from None
        return None

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except OSError:
                pass
