"""A simulated tenant: its app registration, licence profile, data and change log.

Data lives in ``Collection`` objects: a list of plain Graph dicts in the order the endpoint
serves them plus a parallel list of sort keys.  Writers build a new pair and swap it in one
assignment (copy-on-write), so request threads read a consistent view with no lock and a
page being served never sees a half-applied change.  Stored dicts are never mutated.

Every object carries ``visible_at`` (epoch seconds, internal, stripped on output): an
object is served only once ``visible_at <= now``, which models Entra's ingestion latency
(graph-facts §0.7) and lets tests create "late" events deliberately.

Users also feed a change log (one entry per add/change/delete) that ``/users/delta``
replays from a sequence number; ``expire_delta_tokens`` and ``revoke_tokens`` bump
generation counters that outstanding tokens are checked against.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
from typing import TYPE_CHECKING, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import generators as gen
from .endpoints import collection_orders
from .profiles import Profile, get_profile
from .timefmt import parse_ts, to_epoch

if TYPE_CHECKING:  # pragma: no cover
    from .server import GraphSimulator

__all__ = ["Collection", "SimTenant", "DEFAULT_VOLUMES", "DELTA_EXPIRY_MODES"]

DEFAULT_VOLUMES = {"users": 120, "sign_ins": 300, "directory_audits": 100, "alerts": 40}
DELTA_EXPIRY_MODES = ("410", "syncStateNotFound")
_DOMAINS = ("contoso", "fabrikam", "northwind", "adatum", "tailspin", "wingtip", "litware", "proseware")


class Collection:
    """Objects in served order with ascending sort keys (``-epoch`` when newest-first)."""

    def __init__(self, order_field: str | None, descending: bool = True):
        self.order_field = order_field
        self.descending = descending
        self._data: tuple[list[dict], list[float]] = ([], [])
        self._index: dict[str, int] | None = None
        self._index_of: list[dict] | None = None
        self._counter = 0  # insertion keys for unordered collections

    # -- reading (lock-free: one attribute read gives a consistent pair)
    @property
    def items(self) -> list[dict]:
        return self._data[0]

    def view(self) -> tuple[list[dict], list[float]]:
        return self._data

    def __len__(self) -> int:
        return len(self._data[0])

    def _key(self, obj: dict) -> float:
        if self.order_field is None:
            self._counter += 1
            return float(self._counter)
        value = parse_ts(obj[self.order_field])
        return -value if self.descending else value

    # -- writing (callers hold the tenant lock)
    def extend(self, objs: list[dict]) -> None:
        items, keys = self._data
        new = [(self._key(o), o) for o in objs]
        if not items:
            pairs = new
        else:
            pairs = list(zip(keys, items))
            pairs.extend(new)
        pairs.sort(key=lambda p: p[0])
        self._data = ([p[1] for p in pairs], [p[0] for p in pairs])
        self._index = None

    def index(self) -> dict[str, int]:
        items = self._data[0]
        if self._index is None or self._index_of is not items:
            self._index = {o["id"]: i for i, o in enumerate(items)}
            self._index_of = items
        return self._index

    def replace(self, new_objs: Iterable[dict]) -> None:
        """Swap in new versions of existing objects (same id, same sort position)."""
        items, keys = self._data
        idx = self.index()
        items = list(items)
        for o in new_objs:
            items[idx[o["id"]]] = o
        self._data = (items, keys)
        self._index, self._index_of = idx, items

    def remove(self, ids: set[str]) -> None:
        items, keys = self._data
        kept = [(k, o) for k, o in zip(keys, items) if o["id"] not in ids]
        self._data = ([p[1] for p in kept], [p[0] for p in kept])
        self._index = None

    def slice_bounds(self, keys: list[float], low: float | None, high: float | None, low_inc: bool,
                     high_inc: bool) -> tuple[int, int]:
        """Index range of ``keys`` (from the same ``view()`` as the items) whose order-field
        epoch lies within [low, high], honouring inclusivity."""
        start, end = 0, len(keys)
        if self.descending:
            if high is not None:
                start = (bisect.bisect_left if high_inc else bisect.bisect_right)(keys, -high)
            if low is not None:
                end = (bisect.bisect_right if low_inc else bisect.bisect_left)(keys, -low)
        else:
            if low is not None:
                start = (bisect.bisect_left if low_inc else bisect.bisect_right)(keys, low)
            if high is not None:
                end = (bisect.bisect_right if high_inc else bisect.bisect_left)(keys, high)
        return start, max(start, end)


class CertificateCredential:
    """A registered certificate: public key and the thumbprints MSAL puts in x5t / x5t#S256."""

    def __init__(self, pem: str | bytes):
        data = pem.encode() if isinstance(pem, str) else pem
        certs = x509.load_pem_x509_certificates(data)
        if not certs:
            raise ValueError("certificate_pem holds no CERTIFICATE block")
        cert = certs[0]
        der = cert.public_bytes(serialization.Encoding.DER)
        self.public_key = cert.public_key()
        self.sha1 = hashlib.sha1(der).digest()
        self.sha256 = hashlib.sha256(der).digest()
        self.thumbprint = self.sha1.hex().upper()


class SimTenant:
    """One tenant of the simulator (use ``GraphSimulator.add_tenant`` to make one)."""

    def __init__(self, sim: "GraphSimulator", *, profile: str, tenant_id: str, client_id: str,
                 client_secret: str, certificate_pem: str | bytes | None, seed: int, index: int):
        self._sim = sim
        self._profile: Profile = get_profile(profile)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.certificate = CertificateCredential(certificate_pem) if certificate_pem else None
        self.seed = seed
        self.domain = f"{_DOMAINS[index % len(_DOMAINS)]}{index // len(_DOMAINS) or ''}.onmicrosoft.com"
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        # One collection per name used in the endpoint table, in the order its rows serve.
        self.collections: dict[str, Collection] = {
            name: Collection(order_field, descending) for name, (order_field, descending) in collection_orders().items()
        }
        # Application permissions (app roles) granted to the app; None = every permission.
        self.permissions: set[str] | None = None
        # /users/delta: emit every Nth changed user twice in one response (documented replays).
        self.replay_every = 0
        self.delta_token_ttl = 7 * 86400.0  # directory delta tokens live 7 days (graph-facts §0.5)
        self.token_generation = 0
        self.delta_epoch = 0
        self._expired_modes: dict[int, str] = {}
        self._changes: list[str] = []  # user ids; sequence number = index + 1
        self._removed: dict[str, str] = {}  # user id -> "changed" | "deleted"
        self._users_by_id: dict[str, dict] = {}
        self._user_counter = 0
        self._incident_counter = 1000 + index * 100000

    # ------------------------------------------------------------------ descriptive
    @property
    def profile(self) -> str:
        return self._profile.name

    @profile.setter
    def profile(self, name: str) -> None:
        """Change the licence at run time (a tenant that buys or loses a licence)."""
        self._profile = get_profile(name)

    @property
    def licence(self) -> Profile:
        return self._profile

    def collection(self, name: str) -> Collection:
        """The named collection, created on first use for rows registered after this tenant."""
        coll = self.collections.get(name)
        if coll is None:
            with self.lock:
                coll = self.collections.get(name)
                if coll is None:
                    order = collection_orders().get(name)
                    if order is None:
                        raise KeyError(f"no endpoint row uses a collection named {name!r}")
                    coll = self.collections[name] = Collection(*order)
        return coll

    def has_capability(self, capability: str | None) -> bool:
        return capability is None or capability in self._profile.capabilities

    def has_permission(self, requirement: str) -> bool:
        """``requirement`` is ``"A"`` or ``"A|B"`` (any alternative suffices)."""
        if self.permissions is None:
            return True
        return any(p in self.permissions for p in requirement.split("|"))

    @property
    def sign_ins(self) -> list[dict]:
        return self.collections["sign_ins"].items

    @property
    def directory_audits(self) -> list[dict]:
        return self.collections["directory_audits"].items

    @property
    def alerts(self) -> list[dict]:
        return self.collections["alerts"].items

    @property
    def users(self) -> list[dict]:
        return self.collections["users"].items

    def __repr__(self) -> str:
        return f"SimTenant(tenant_id={self.tenant_id!r}, profile={self.profile!r})"

    # ------------------------------------------------------------------ helpers
    def _now(self) -> float:
        return self._sim.now()

    def _times(self, n: int, start, end) -> list[float]:
        now = self._now()
        lo = to_epoch(start, now - 86400.0)
        hi = to_epoch(end, now - 180.0)
        if hi < lo:
            raise ValueError("end is before start")
        uni = self.rng.uniform
        return sorted((uni(lo, hi) for _ in range(n)), reverse=True)

    def _user_pool(self) -> list[tuple]:
        users = self.users
        if not users:
            users = gen.make_users(random.Random(self.seed + 1), 20, self.domain, 0, self._now())
        return [(u["id"], u["displayName"], u["userPrincipalName"]) for u in users]

    def _set_visibility(self, objs: list[dict], field: str, visible_at, latency) -> None:
        if visible_at is not None:
            at = to_epoch(visible_at, 0.0)
            for o in objs:
                o["visible_at"] = at
        elif latency is not None:
            lo, hi = latency
            uni = self.rng.uniform
            for o in objs:
                o["visible_at"] = parse_ts(o[field]) + uni(lo, hi)

    # ------------------------------------------------------------------ log data
    def add_objects(self, collection: str, objs: list[dict], *, visible_at=None) -> list[dict]:
        """Add ready-made Graph dicts to any collection (how new sources get data).

        Each needs an ``id`` and, for a time-ordered collection, its order field as Graph
        text.  ``visible_at`` defaults to the object's own value, else visible now.
        """
        coll = self.collection(collection)
        at = None if visible_at is None else to_epoch(visible_at, 0.0)
        with self.lock:
            for o in objs:
                if at is not None:
                    o["visible_at"] = at
                else:
                    o.setdefault("visible_at", 0.0)
            coll.extend(objs)
        return objs

    def add_sign_ins(self, n: int, *, start=None, end=None, visible_at=None, latency=None,
                     event_type: str = "interactiveUser") -> list[dict]:
        """Add ``n`` sign-ins, createdDateTime uniform in [start, end] (default: last 24 h to now-3 min).

        ``visible_at`` (datetime or epoch) hides them until then; ``latency=(lo, hi)`` seconds
        makes each visible at createdDateTime + uniform(lo, hi) instead.  ``event_type`` is
        one of ``generators.SIGN_IN_EVENT_TYPES`` (v1.0 serves ``interactiveUser`` only).
        """
        if event_type not in gen.SIGN_IN_EVENT_TYPES:
            raise ValueError(f"event_type must be one of {gen.SIGN_IN_EVENT_TYPES}")
        with self.lock:
            objs = gen.make_sign_ins(self.rng, self._times(n, start, end), self._user_pool(), event_type)
            self._set_visibility(objs, "createdDateTime", visible_at, latency)
            self.collections["sign_ins"].extend(objs)
        return objs

    def add_directory_audits(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        with self.lock:
            objs = gen.make_directory_audits(self.rng, self._times(n, start, end), self._user_pool(), self.tenant_id)
            self._set_visibility(objs, "activityDateTime", visible_at, latency)
            self.collections["directory_audits"].extend(objs)
        return objs

    def add_alerts(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        with self.lock:
            objs = gen.make_alerts(self.rng, self._times(n, start, end), self._user_pool(), self.tenant_id,
                                   self.domain, self._now(), self._incident_counter)
            self._incident_counter += n
            self._set_visibility(objs, "createdDateTime", visible_at, latency)
            self.collections["alerts"].extend(objs)
        return objs

    def update_alerts(self, n_or_ids, *, lag: tuple[float, float] = (5.0, 60.0)) -> list[dict]:
        """Progress alerts (status, comment) and set lastUpdateDateTime = now - uniform(*lag).

        ``n_or_ids``: how many (picked from the visible alerts) or which ids.  Ids are kept.
        """
        with self.lock:
            coll = self.collections["alerts"]
            now = self._now()
            if isinstance(n_or_ids, int):
                pool = [a for a in coll.items if a["visible_at"] <= now]
                chosen = self.rng.sample(pool, min(n_or_ids, len(pool)))
            else:
                idx = coll.index()
                chosen = [coll.items[idx[i]] for i in n_or_ids]
            new = [gen.update_alert(a, now - self.rng.uniform(*lag)) for a in chosen]
            coll.replace(new)
        return new

    # ------------------------------------------------------------------ users and delta
    @property
    def delta_seq(self) -> int:
        return len(self._changes)

    def add_users(self, n: int) -> list[dict]:
        with self.lock:
            objs = gen.make_users(self.rng, n, self.domain, self._user_counter, self._now())
            self._user_counter += n
            self.collections["users"].extend(objs)
            for u in objs:
                self._users_by_id[u["id"]] = u
                self._removed.pop(u["id"], None)
                self._changes.append(u["id"])
        return objs

    def _pick_users(self, n_or_ids) -> list[dict]:
        if isinstance(n_or_ids, int):
            pool = list(self.users)
            return self.rng.sample(pool, min(n_or_ids, len(pool)))
        return [self._users_by_id[i] for i in n_or_ids]

    def change_users(self, n_or_ids) -> list[dict]:
        """Attribute changes (job title, office, department, phone) on ``n`` users or these ids."""
        with self.lock:
            new = [gen.change_user(self.rng, u) for u in self._pick_users(n_or_ids)]
            self.collections["users"].replace(new)
            for u in new:
                self._users_by_id[u["id"]] = u
                self._changes.append(u["id"])
        return new

    def delete_users(self, n_or_ids, permanent: bool = False) -> list[dict]:
        """Delete users: delta reports ``@removed`` reason ``changed`` (soft) or ``deleted``."""
        with self.lock:
            gone = self._pick_users(n_or_ids)
            ids = {u["id"] for u in gone}
            self.collections["users"].remove(ids)
            for u in gone:
                del self._users_by_id[u["id"]]
                self._removed[u["id"]] = "deleted" if permanent else "changed"
                self._changes.append(u["id"])
        return gone

    def user_state(self, user_id: str) -> dict | str | None:
        """The current user dict, the removal reason, or None if never seen."""
        user = self._users_by_id.get(user_id)
        if user is not None:
            return user
        return self._removed.get(user_id)

    def changed_ids(self, since: int, upto: int) -> list[str]:
        """Distinct user ids changed in (since, upto], ordered by their latest change."""
        seen: dict[str, None] = {}
        for uid in self._changes[since:upto]:
            seen.pop(uid, None)
            seen[uid] = None
        return list(seen)

    def expire_delta_tokens(self, mode: str = "410") -> None:
        """Invalidate every outstanding delta/skip token of /users/delta.

        ``"410"``: 410 Gone with a ``Location`` to restart a full sync; ``"syncStateNotFound"``:
        400 with that code (what a token past its 7-day life gets, graph-facts §0.5).
        """
        if mode not in DELTA_EXPIRY_MODES:
            raise ValueError(f"mode must be one of {DELTA_EXPIRY_MODES}")
        with self.lock:
            self._expired_modes[self.delta_epoch] = mode
            self.delta_epoch += 1

    def expiry_mode(self, epoch: int) -> str | None:
        """How a token of ``epoch`` is refused, or None if it is still current."""
        if epoch == self.delta_epoch:
            return None
        return self._expired_modes.get(epoch, "syncStateNotFound")

    # ------------------------------------------------------------------ tokens
    def revoke_tokens(self) -> None:
        """Every access token issued so far becomes invalid (401 InvalidAuthenticationToken)."""
        with self.lock:
            self.token_generation += 1

    # ------------------------------------------------------------------ bootstrap
    def populate(self, volumes: dict | None) -> None:
        vols = dict(DEFAULT_VOLUMES)
        if volumes:
            unknown = set(volumes) - set(DEFAULT_VOLUMES)
            if unknown:
                raise ValueError(f"unknown volume keys {sorted(unknown)}; known: {sorted(DEFAULT_VOLUMES)}")
            vols.update(volumes)
        self.add_users(vols["users"])
        self.add_sign_ins(vols["sign_ins"])
        self.add_directory_audits(vols["directory_audits"])
        self.add_alerts(vols["alerts"])
