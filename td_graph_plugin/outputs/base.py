"""What an output is: something that takes a page of encoded records and says where it is now."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

__all__ = ["Output", "PositionedOutput"]


class Output(Protocol):
    """A synchronous output. ``write`` returns only once the records are accepted.

    ``name`` keys the committed position in the state store; ``write`` returns the position
    after the batch (the file offset) or None when the output has no position (stdout).
    """

    name: str

    def open(self, committed_position: int | None) -> None: ...

    def write(self, lines: Sequence[bytes]) -> int | None: ...

    def close(self) -> None: ...


@runtime_checkable
class PositionedOutput(Output, Protocol):
    """An output with a committed position (the file): after a crash it may hold records past
    that position (written, never checkpointed), offered as ``recovered`` for adoption.

    The position is committed with ``file_id``, the identity of the file it is an offset in, so
    a rotated file is told apart from a truncated one; ``open`` receives both back."""

    recovered: list[bytes]

    def open(self, committed_position: int | None, committed_file: str | None = None) -> None: ...

    @property
    def position(self) -> int: ...

    @property
    def file_id(self) -> str: ...

    def discard_recovered(self) -> None:
        """Cut the recovered tail instead (no adopter: those pages are collected again)."""

    def request_reopen(self) -> None:
        """Reopen the path before the next page (external rotation; safe in a signal handler)."""

    def reopen_if_requested(self) -> bool:
        """Between pages: reopen if asked; True when another file is written from now on."""
