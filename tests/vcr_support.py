"""vcrpy for the top-level ``cassettes/`` folder: replay Microsoft's documented responses
through the real td-graph stack (MSAL, GraphClient, collectors, SQLite state, an output).

* ``record_mode="none"`` always: nothing here may reach the network, and a request the
  cassette does not hold fails the test (``CannotOverwriteExistingCassetteException``).
* Secrets never reach a cassette: the ``Authorization`` header is replaced by
  ``Bearer REDACTED``, ``client_secret``/``client_assertion`` are dropped from the token
  POST body, and ``access_token`` in a token response is rewritten to ``REDACTED``.
* Matching (``graph_query``): method, scheme, host, port, path (percent-decoded), and the
  query string as a multiset of decoded ``(name, value)`` pairs where only the datetime
  literals inside ``$filter`` are normalised.  ``createdDateTime ge <any instant>`` matches a
  recorded ``createdDateTime ge <other instant>``, but a different field, operator
  (``gt`` vs ``ge``) or clause does not; ``$skiptoken``, ``$deltatoken``, ``$top`` and every
  other parameter are compared exactly.  The body is never matched (the secret is gone
  from the recording anyway).
* ``run_source`` runs one source end to end: ``Engine.run_job`` with a real ``GraphClient``
  (its real ``TokenProvider`` and MSAL), the real collectors, a real ``StateStore`` and an
  in-memory output, at a frozen ``now``.  Pacing and Retry-After waits use a virtual clock,
  so a run takes milliseconds; every wait is recorded.
"""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
import vcr
from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException

from td_graph_plugin.collector import Engine, Job, JobResult, SyncSink
from td_graph_plugin.config.model import Config, HttpConfig, Secret, SourceSettings, TenantConfig
from td_graph_plugin.graph.client import GraphClient
from td_graph_plugin.graph.ratelimit import RateLimiter
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.plugins import create_plugin_manager, load_catalogue
from td_graph_plugin.state import StateStore
from tests.fakes import ListOutput

__all__ = [
    "ROOT",
    "CASSETTES",
    "NOW",
    "TENANT_ID",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "GRAPH",
    "LOGIN",
    "graph_vcr",
    "normalise_filter",
    "query_key",
    "graph_query",
    "graph_path",
    "scrub_token_response",
    "Played",
    "Replay",
    "replay",
    "VirtualClock",
    "tenant_config",
    "make_client",
    "SourceResult",
    "run_source",
    "catalogue",
    "planned_windows",
    "cassette_miss",
]

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"

# The frozen "now" every cassette was written for (the window filters are computed from it).
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
TENANT_ID = "00000000-0000-0000-0000-000000000001"
CLIENT_ID = "11111111-1111-1111-1111-111111111111"
# A throwaway value: it must never appear in a cassette (test_cassettes_scrub checks).
CLIENT_SECRET = "td-graph-cassette-secret~not-a-real-one"
GRAPH = "https://graph.microsoft.com"
LOGIN = "https://login.microsoftonline.com"

# ISO-8601 instants as they appear in $filter: 2026-11-25T12:00:00Z, ...00.1234567Z,
# ...00+00:00, and the date-only form Graph also accepts.
_DATETIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?(?![\w:.-])"
)


# --- matching ------------------------------------------------------------------------
def normalise_filter(value: str) -> str:
    """``$filter`` with every datetime literal replaced by ``<datetime>``; nothing else moves."""
    return _DATETIME.sub("<datetime>", value)


def query_key(uri: str) -> list[tuple[str, str]]:
    """The query as sorted decoded pairs, ``$filter`` datetimes normalised."""
    pairs = parse_qsl(urlsplit(uri).query, keep_blank_values=True)
    out = []
    for name, value in pairs:
        if name == "$filter":
            value = normalise_filter(value)
        out.append((name, value))
    return sorted(out)


def graph_query(r1, r2) -> None:
    """vcrpy matcher: the query with volatile ``$filter`` datetimes normalised."""
    a, b = query_key(r1.uri), query_key(r2.uri)
    if a != b:
        raise AssertionError(f"query differs: {a} != {b}")


def graph_path(r1, r2) -> None:
    """vcrpy matcher: the percent-decoded path (``getOffice365ActiveUserDetail(period='D7')``
    is the same path whether or not a client quoted its ``'``)."""
    a, b = unquote(urlsplit(r1.uri).path), unquote(urlsplit(r2.uri).path)
    if a != b:
        raise AssertionError(f"path differs: {a} != {b}")


# --- scrubbing -----------------------------------------------------------------------
def scrub_token_response(response: dict) -> dict:
    """before_record_response: ``access_token`` (and id/refresh tokens) become ``REDACTED``."""
    body = response.get("body") or {}
    raw = body.get("string")
    if not raw:
        return response
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    if "access_token" not in text and "refresh_token" not in text and "id_token" not in text:
        return response
    try:
        data = json.loads(text)
    except ValueError:
        return response
    keys = [k for k in ("access_token", "refresh_token", "id_token") if isinstance(data, dict) and k in data]
    if keys:
        for key in keys:
            data[key] = "REDACTED"
        new = json.dumps(data)
        body["string"] = new.encode("utf-8") if isinstance(raw, (bytes, bytearray)) else new
        response["body"] = body
    return response


def graph_vcr(**overrides: Any) -> vcr.VCR:
    """The project's vcrpy configuration (``record_mode="none"``, scrubbing, matcher)."""
    options: dict[str, Any] = dict(
        cassette_library_dir=str(CASSETTES),
        record_mode="none",
        match_on=["method", "scheme", "host", "port", "graph_path", "graph_query"],
        filter_headers=[("authorization", "Bearer REDACTED")],
        filter_post_data_parameters=["client_secret", "client_assertion"],
        decode_compressed_response=True,
        before_record_response=scrub_token_response,
    )
    options.update(overrides)
    if options.get("record_mode") != "none":
        raise ValueError("cassettes are replay-only here: record_mode must stay 'none'")
    v = vcr.VCR(**options)
    v.register_matcher("graph_query", graph_query)
    v.register_matcher("graph_path", graph_path)
    return v


# --- what was played -----------------------------------------------------------------
@dataclass
class Played:
    """One request td-graph sent and the recorded interaction vcrpy answered it with."""

    request: Any  # vcr.request.Request as sent (headers exactly as td-graph set them)
    index: int  # interaction index in the cassette
    recorded: Any  # the recorded vcr.request.Request
    status: int

    @property
    def uri(self) -> str:
        return self.request.uri

    @property
    def host(self) -> str:
        return urlsplit(self.request.uri).netloc

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.request.uri).path)

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.request.uri).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        for k, v in self.request.headers.items():
            if k.lower() == name.lower():
                return v
        return None


class Replay:
    """An open cassette whose plays are recorded in ``played`` (thread-safe)."""

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette
        self.played: list[Played] = []
        self._lock = threading.Lock()
        original = cassette.play_response

        def play_response(request):
            response = original(request)
            index = next(
                i for i, (_, resp) in enumerate(cassette.data) if resp is response
            )
            with self._lock:
                self.played.append(
                    Played(request, index, cassette.data[index][0], int(response["status"]["code"]))
                )
            return response

        cassette.play_response = play_response  # type: ignore[method-assign]

    @property
    def graph(self) -> list[Played]:
        return [p for p in self.played if p.host == urlsplit(GRAPH).netloc]

    @property
    def token_posts(self) -> list[Played]:
        return [p for p in self.played if p.request.method == "POST" and p.path.endswith("/oauth2/v2.0/token")]

    def unplayed(self) -> list[int]:
        return [i for i in range(len(self.cassette.data)) if self.cassette.play_counts[i] == 0]


@contextmanager
def replay(path: str | Path, **overrides: Any) -> Iterator[Replay]:
    """Open ``cassettes/<path>`` for playback only."""
    path = Path(path)
    full = path if path.is_absolute() else CASSETTES / path
    if not full.exists():
        raise FileNotFoundError(full)
    with graph_vcr(**overrides).use_cassette(str(full)) as cassette:
        yield Replay(cassette)


# --- the stack -----------------------------------------------------------------------
class VirtualClock:
    """Monotonic time that only moves when someone sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Time passes without a pacing wait (e.g. the client's own Retry-After sleep)."""
        with self._lock:
            self.t += max(0.0, seconds)


def tenant_config(**overrides: Any) -> TenantConfig:
    kw: dict[str, Any] = dict(
        name="contoso",
        tenant_id=TENANT_ID,
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        cloud="global",
    )
    kw.update(overrides)
    return TenantConfig(**kw)


def make_client(
    tenant: TenantConfig | None = None,
    *,
    clock: VirtualClock | None = None,
    sleeps: list[float] | None = None,
    metrics: Metrics | None = None,
    http: HttpConfig | None = None,
) -> GraphClient:
    """A real GraphClient (real session, TokenProvider and MSAL) whose pacing runs on
    ``clock`` and whose retry waits are appended to ``sleeps`` (and move ``clock``)
    instead of being slept."""
    clock = clock or VirtualClock()
    limiter = RateLimiter(clock=clock.time, sleep=clock.sleep)
    waits = sleeps if sleeps is not None else []

    def retry_wait(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    return GraphClient(
        tenant or tenant_config(),
        http or HttpConfig(),
        metrics,
        limiter=limiter,
        sleep=retry_wait,
    )


def planned_windows(spec, now: datetime = NOW, settings: SourceSettings | None = None) -> list[tuple[datetime, datetime]]:
    """The (lower, upper) windows a first run of a window source walks at ``now``:
    ``now - lookback`` to ``now - delay`` in ``window_chunk`` steps, each chunk starting one
    ``overlap`` before the previous upper bound (collector/window.py)."""
    settings = settings or SourceSettings()

    def d(name: str):
        return spec.duration(name, getattr(settings, name, None))

    end = now - d("delay")
    start = now - d("lookback")
    lower, upper = start, min(start + d("window_chunk"), end)
    out = []
    while lower < upper:
        out.append((lower, upper))
        done = upper
        if done >= end:
            break
        lower, upper = done - d("overlap"), min(done + d("window_chunk"), end)
    return out


_CATALOGUE = None


def catalogue():
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = load_catalogue(create_plugin_manager(load_entrypoints=False))
    return _CATALOGUE


@dataclass
class SourceResult:
    records: list[dict[str, Any]]
    played: list[Played]
    results: list[JobResult]
    replay: Replay
    sleeps: list[float] = field(default_factory=list)
    pacing: list[float] = field(default_factory=list)

    @property
    def result(self) -> JobResult:
        return self.results[-1]

    @property
    def graph(self) -> list[Played]:
        return self.replay.graph

    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]


def cassette_miss(error: BaseException | None) -> CannotOverwriteExistingCassetteException | None:
    """The vcrpy "no such interaction" error behind ``error`` (td-graph wraps or chains it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, CannotOverwriteExistingCassetteException):
            return error
        error = error.__cause__ or error.__context__
    return None


def run_source(
    source: str,
    cassette: str | Path,
    state_dir: str | Path,
    *,
    runs: int = 1,
    now: datetime | Callable[[], datetime] = NOW,
    settings: SourceSettings | None = None,
    before_run: Callable[[int, StateStore], None] | None = None,
) -> SourceResult:
    """Run ``source`` ``runs`` times (a later run continues from the state the earlier one
    committed) against ``cassette`` and return what the output received and what was
    played.  ``now`` is frozen (a callable may move it between runs)."""
    tenant = tenant_config()
    clock = VirtualClock()
    sleeps: list[float] = []
    now_fn = now if callable(now) else (lambda: now)
    cat = catalogue()
    spec = cat[source]
    config = Config(tenants=(tenant,), workers=1)
    state = StateStore(str(Path(state_dir) / "state.db"))
    output = ListOutput()
    sink = SyncSink(output, state)
    sink.open()
    metrics = Metrics()
    results: list[JobResult] = []
    try:
        with replay(cassette) as rep:
            engine = Engine(
                config,
                cat,
                state=state,
                sink=sink,
                metrics=metrics,
                now=now_fn,
                client_factory=lambda t: make_client(t, clock=clock, sleeps=sleeps, metrics=metrics),
            )
            try:
                job = Job(tenant, spec, settings or SourceSettings())
                for n in range(runs):
                    if before_run is not None:
                        before_run(n, state)
                    result = engine.run_job(job)
                    results.append(result)
                    unmatched = cassette_miss(result.error)
                    if unmatched is not None:
                        # td-graph sent a request the cassette does not hold: that is a test
                        # failure, not a source failure to be reported as "failing".
                        raise unmatched
            finally:
                engine.close()
    finally:
        state.close()
    records = [orjson.loads(line) for line in output.lines]
    return SourceResult(records, rep.played, results, rep, sleeps, clock.sleeps)
