"""What an output is: something that takes a page of encoded records and says where it is now."""

from __future__ import annotations

from typing import Protocol, Sequence

__all__ = ["Output"]


class Output(Protocol):
    """A synchronous output. ``write`` returns only once the records are accepted.

    ``name`` keys the committed position in the state store; ``write`` returns the position
    after the batch (the file offset) or None when the output has no position (stdout).
    """

    name: str

    def open(self, committed_position: int | None) -> None: ...

    def write(self, lines: Sequence[bytes]) -> int | None: ...

    def close(self) -> None: ...
