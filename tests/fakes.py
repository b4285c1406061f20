"""Small in-memory stand-ins for unit tests of the collectors (integration uses the simulator)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from td_graph_plugin.graph.serverclock import ServerClock
from td_graph_plugin.timeutil import parse_time

_CLAUSE = re.compile(r"(\w+) (ge|gt|le|lt|eq) (\S+)")


@dataclass
class FakePage:
    items: list[dict[str, Any]]
    next_link: str | None = None
    delta_link: str | None = None
    request_id: str | None = "req-1"
    raw: dict[str, Any] = field(default_factory=dict)
    header_ok: bool = True  # a CSV report pager's mark: the header had the documented columns


class FakeWindowClient:
    """Serves ``items`` filtered by the time clauses of $filter, ``page_size`` per page."""

    def __init__(self, items: list[dict[str, Any]], page_size: int = 3) -> None:
        self.items = items
        self.page_size = page_size
        self.calls: list[dict[str, Any]] = []
        self.fail_on_call: Callable[[int], Exception | None] = lambda n: None
        self.server_clock = ServerClock()  # no Date header seen unless a test observes one

    def url(self, version: str, path: str) -> str:
        return f"https://graph.test/{version}{path}"

    def pages(self, url, *, params=None, headers=None, source="-", throttle_class="default", throttle_key=None):
        self.calls.append({"url": url, "params": dict(params or {}), "headers": dict(headers or {})})
        flt = (params or {}).get("$filter", "")
        clauses = _CLAUSE.findall(flt)
        ops = {"ge": lambda a, b: a >= b, "gt": lambda a, b: a > b, "le": lambda a, b: a <= b, "lt": lambda a, b: a < b, "eq": lambda a, b: a == b}
        selected = []
        for item in self.items:
            ok = True
            for fld, op, lit in clauses:
                value = parse_time(item.get(fld))
                if value is None or not ops[op](value, parse_time(lit)):
                    ok = False
            if ok:
                selected.append(item)
        selected.sort(key=lambda i: i.get(clauses[0][0], "") if clauses else "", reverse=True)
        chunks = [selected[i : i + self.page_size] for i in range(0, len(selected), self.page_size)] or [[]]
        for n, chunk in enumerate(chunks):
            exc = self.fail_on_call(n)
            if exc is not None:
                raise exc
            yield FakePage(list(chunk), next_link=f"{url}?page={n + 1}" if n + 1 < len(chunks) else None)


class ScriptedClient:
    """Answers pages() from a script: each call pops the next list of pages (or an exception)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, dict[str, Any] | None]] = []
        self.server_clock = ServerClock()

    def url(self, version: str, path: str) -> str:
        return f"https://graph.test/{version}{path}"

    def pages(self, url, *, params=None, headers=None, source="-", throttle_class="default", throttle_key=None):
        self.calls.append((url, dict(params) if params else None))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        for page in step:
            if isinstance(page, Exception):
                raise page
            yield page


class ListOutput:
    """An output that keeps lines in memory and can be told to fail."""

    name = "memory"

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.fail = False

    def open(self, committed_position):
        pass

    def write(self, lines):
        from td_graph_plugin.errors import OutputError

        if self.fail:
            raise OutputError("disk full (test)")
        self.lines.extend(lines)
        return None

    def close(self):
        pass


class FakeClock:
    """A monotonic clock whose sleep() only advances time (rate limiter and retry tests)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s
