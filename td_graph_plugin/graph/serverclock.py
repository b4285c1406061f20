"""Graph's own clock, read from the ``Date`` header of every answer.

A VM resume or a bad NTP step can push the local clock forward; a window whose end is computed
from that clock reaches into the future and, once the clock is corrected, the gap is never read.
The collectors bound a window's end by Graph's time (RFC 9110 §6.6.1: the ``Date`` header is the
origin server's time when it generated the response), extrapolated with the monotonic clock,
which no wall-clock step moves.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Callable

__all__ = ["ServerClock"]


class ServerClock:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._seen: tuple[datetime, float] | None = None
        self._lock = threading.Lock()

    def observe(self, date_header: str | None) -> None:
        """Remember the server time an answer carried (a missing or malformed header is ignored)."""
        if not date_header:
            return
        try:
            when = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            return
        if when.tzinfo is None:
            return  # RFC 9110 dates are always GMT; a naive one is not a Date header
        with self._lock:
            self._seen = (when.astimezone(timezone.utc), self._monotonic())

    def now(self) -> datetime | None:
        """Graph's time now (to the second the header gives), or None before any answer."""
        with self._lock:
            seen = self._seen
        if seen is None:
            return None
        when, at = seen
        return when + timedelta(seconds=self._monotonic() - at)
