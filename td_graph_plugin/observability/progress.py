"""A live progress block for long backfills, drawn on stderr only when it is a terminal.

One line per active run, refreshed in place::

    contoso/audit_logs.sign_ins  12,345 records  13 pages  window 2026-11-25T12:00Z..18:00Z  1m05s

When the stream is not a terminal (a shipper reading our stderr, a log file, a pipe) the display
does nothing at all: no thread, no escape sequences.  Log lines written to the same stream by a
``logging.StreamHandler`` first erase the block, so they are never overdrawn; the block is
redrawn below them on the next tick.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from ..timeutil import parse_time

__all__ = ["ProgressDisplay", "format_window", "format_run"]

_UP_AND_CLEAR = "\x1b[{n}F\x1b[J"  # cursor to the start of the line n lines up, clear below


def _short(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def format_window(window: tuple[str | None, str | None] | None) -> str:
    """``2026-11-25T12:00Z..18:00Z`` (the date is repeated only when it changes)."""
    if not window:
        return ""
    lower, upper = parse_time(window[0]), parse_time(window[1])
    if lower is None or upper is None:
        return ""
    lo, hi = lower.astimezone(timezone.utc), upper.astimezone(timezone.utc)
    end = hi.strftime("%H:%MZ") if lo.date() == hi.date() else _short(hi)
    return f"{_short(lo)}..{end}"


def _elapsed(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_run(run: Any, elapsed: float | None = None) -> str:
    """One display line for a ``SourceRun`` (tenant/source, records, pages, window, elapsed)."""
    stats = run.stats
    parts = [
        f"{run.tenant.name}/{run.spec.name}",
        f"{stats.records:,} records",
        f"{stats.pages:,} pages",
    ]
    window = format_window(getattr(stats, "window", None))
    if window:
        parts.append(f"window {window}")
    if elapsed is not None:
        parts.append(_elapsed(elapsed))
    return "  ".join(parts)


class _Guarded:
    """Stands in for the stream inside logging handlers: erases the block before each write."""

    def __init__(self, display: "ProgressDisplay", stream: TextIO) -> None:
        self._display = display
        self._stream = stream

    def write(self, text: str) -> int:
        with self._display._lock:
            self._display._erase()
            return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ProgressDisplay:
    """Draws ``engine.active_runs()`` every ``interval`` seconds while started.

    Runs younger than ``min_age`` seconds are not shown (a routine 200 ms poll would only
    flicker); a backfill that takes minutes is.
    """

    def __init__(
        self,
        engine: Any,
        stream: TextIO | None = None,
        interval: float = 1.0,
        *,
        min_age: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.min_age = min_age
        self.clock = clock
        self.enabled = _isatty(self.stream)
        self._lock = threading.RLock()
        self._drawn = 0
        self._first_seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guarded: list[tuple[logging.StreamHandler, Any]] = []

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "ProgressDisplay":
        if not self.enabled or self._thread is not None:
            return self
        self._guard_log_handlers()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="td-graph-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        with self._lock:
            self._erase()
            self._flush()
        self._unguard_log_handlers()

    def __enter__(self) -> "ProgressDisplay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- drawing -------------------------------------------------------------------------------
    def lines(self) -> list[str]:
        """The lines the next refresh draws (runs active for at least ``min_age``)."""
        now = self.clock()
        runs = list(self.engine.active_runs())
        alive = {id(r) for r in runs}
        for key in [k for k in self._first_seen if k not in alive]:
            del self._first_seen[key]
        out = []
        for run in sorted(runs, key=lambda r: (r.tenant.name, r.spec.name)):
            first = self._first_seen.setdefault(id(run), now)
            age = now - first
            if age >= self.min_age:
                out.append(format_run(run, age))
        return out

    def refresh(self) -> None:
        """Redraw the block in place once (the thread calls this every ``interval``)."""
        if not self.enabled:
            return
        lines = self.lines()
        width = _width(self.stream)
        with self._lock:
            self._erase()
            for line in lines:
                self.stream.write(_fit(line, width) + "\n")
            self._drawn = len(lines)
            self._flush()

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(_UP_AND_CLEAR.format(n=self._drawn))
            self._drawn = 0

    def _flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the display must never take the collector down
                logging.getLogger("td_graph_plugin.progress").debug("progress display failed", exc_info=True)
            self._stop.wait(self.interval)

    # --- living with log lines on the same terminal ----------------------------------------------
    def _guard_log_handlers(self) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is self.stream:
                guarded = _Guarded(self, self.stream)
                handler.acquire()
                try:
                    handler.stream = guarded  # type: ignore[assignment]
                finally:
                    handler.release()
                self._guarded.append((handler, guarded))

    def _unguard_log_handlers(self) -> None:
        for handler, guarded in self._guarded:
            handler.acquire()
            try:
                if handler.stream is guarded:
                    handler.stream = self.stream
            finally:
                handler.release()
        self._guarded.clear()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _width(stream: Any) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 120
    except (AttributeError, ValueError, OSError):
        return 120


def _fit(line: str, width: int) -> str:
    """Never wrap: a wrapped line would break the cursor arithmetic of the next redraw."""
    limit = max(width - 1, 20)
    return line if len(line) <= limit else line[: limit - 3] + "..."
