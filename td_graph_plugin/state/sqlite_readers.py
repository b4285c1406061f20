"""Read connections for the SQLite state, beside its one writer.

In WAL mode a reader sees every transaction committed before its statement started and never
waits for the writer (https://www.sqlite.org/wal.html#concurrency), so a worker reading a
cursor or a page's dedup keys does not wait out another page's COMMIT and its fsync
(``synchronous=FULL``): with one shared connection, 32 workers of a 1,000-tenant pass queued
behind every commit.  A few connections, opened on first use, each used by one thread at a
time; ``query_only`` so a reader can never write.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from ..errors import StateError

__all__ = ["ReaderPool", "READERS"]

READERS = 4  # the workers' reads are short point and range queries
CACHE_KB = 512  # per reader: the page cache stays small (memory per tenant is a target)


class ReaderPool:
    def __init__(self, path: str, size: int = READERS) -> None:
        self.path = path
        self.size = size
        self._idle: list[sqlite3.Connection] = []
        self._open = 0
        self._closed = False
        self._cv = threading.Condition(threading.Lock())

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Every row of ``sql`` on a reader of its own (waits while all are busy)."""
        conn = self._take()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            self._give_back(conn)

    def close(self) -> None:
        """Closes the idle readers now, a busy one when it is given back; later reads fail."""
        with self._cv:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cv.notify_all()
        for conn in idle:
            conn.close()

    def _take(self) -> sqlite3.Connection:
        with self._cv:
            while True:
                if self._closed:
                    raise StateError(f"state database {self.path} is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self.size:
                    self._open += 1
                    break
                self._cv.wait()
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KB}")
        except BaseException:
            with self._cv:
                self._open -= 1
                self._cv.notify()
            raise
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._cv:
            if not self._closed:
                self._idle.append(conn)
                self._cv.notify()
                return
            self._open -= 1
        conn.close()
