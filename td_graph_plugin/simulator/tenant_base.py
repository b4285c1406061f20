"""The core of a simulated tenant: app registration, licence, permissions, collections, change logs.

``SimTenant`` (tenant.py) is this base plus one part per Graph area (``tenant_audit``,
``tenant_security``, ``tenant_identity``, ``tenant_directory``, ``tenant_intune``), each adding
its ``add_*``/``change_*`` methods.  The base holds what they share: the clock, random
generators, collections (collection.py), change logs and the generic object API.

Every object carries ``visible_at`` (epoch seconds, internal, stripped on output): an
object is served only once ``visible_at <= now``, which models Entra's ingestion latency
(graph-facts §0.7) and lets tests create "late" events deliberately.

Every collection has a change log (one entry per add/change/delete) that its delta endpoint
(``/users/delta``, ``/groups/delta``, ...) replays from a sequence number;
``expire_delta_tokens`` and ``revoke_tokens`` bump generation counters that outstanding
tokens are checked against.
"""

from __future__ import annotations

import random
import threading
from typing import Callable, Iterable, Protocol

from . import generators as gen
from .collection import ChangeLog, Collection
from .credentials import CertificateCredential
from .endpoints import collection_orders
from .gen_common import stable_uuid
from .gen_directory import change_application, change_device, change_group, change_service_principal
from .gen_intune import change_managed_device, change_policy
from .gen_reports import change_registration
from .profiles import Profile, get_profile
from .timefmt import parse_ts, to_epoch

__all__ = ["TenantBase", "TenantHost", "CHANGERS", "DELTA_EXPIRY_MODES"]

DELTA_EXPIRY_MODES = ("410", "syncStateNotFound")
_DOMAINS = ("contoso", "fabrikam", "northwind", "adatum", "tailspin", "wingtip", "litware", "proseware")

# collection -> (rng, obj, now) -> new obj; users, risky users, consent requests, control profiles,
# alerts and incidents have richer changers their area's ``_change`` calls with more context.
CHANGERS: dict[str, Callable[[random.Random, dict, float], dict]] = {
    "groups": change_group,
    "devices": change_device,
    "applications": change_application,
    "service_principals": change_service_principal,
    "managed_devices": change_managed_device,
    "compliance_policies": change_policy,
    "device_configurations": change_policy,
    "user_registration_details": change_registration,
}


class TenantHost(Protocol):
    """What a tenant needs from the simulator that holds it (``GraphSimulator``).

    A protocol, not the class, so the tenant modules never import the server (no import cycle).
    """

    def now(self) -> float:
        """The simulator's clock (epoch seconds)."""

    def role_names(self, extra: Iterable[str] = ()) -> list[str]:
        """Every application permission the simulated Microsoft Graph exposes."""


class TenantBase:
    """What every per-area part of ``SimTenant`` builds on: identity, licence, permissions,
    collections with their change logs, the generic object API and token generations.

    Data: ``collections`` (one per endpoint-table collection name).  Every collection has a
    change log that its delta endpoint (if it has one) replays:
    ``add_objects``/``change_objects``/``update_object``/``delete_objects`` record into it.
    ``permissions`` (None = every permission granted) and ``profile`` (the licence) are read
    on every request, so changing them takes effect on the next one.  ``ext`` is a free dict
    for modules that keep extra per-tenant state.
    """

    def __init__(self, sim: TenantHost, *, profile: str, tenant_id: str, client_id: str,
                 client_secret: str, certificate_pem: str | bytes | None, seed: int, index: int,
                 permissions: Iterable[str] | None = None):
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
        self.xrng = random.Random(seed * 7919 + 17)  # the sources added later: keeps the first four's data stable
        # One collection per name used in the endpoint table, in the order its rows serve.
        self.collections: dict[str, Collection] = {
            name: Collection(order_field, descending) for name, (order_field, descending) in collection_orders().items()
        }
        # Application permissions (app roles) granted to the app; None = every permission.
        self._permissions: set[str] | None = None
        if permissions is not None:
            self._permissions = set(permissions)
        elif self._profile.withheld_permissions:
            self._permissions = self._profile_permissions(self._profile)
        self.ext: dict = {}  # per-tenant state of other simulator modules
        # delta endpoints: emit every Nth changed object twice in one response (documented replays).
        self.replay_every = 0
        self.delta_token_ttl = 7 * 86400.0  # directory delta tokens live 7 days (graph-facts §0.5)
        self.token_generation = 0
        self.delta_epoch = 0
        self._expired_modes: dict[int, str] = {}
        self._logs: dict[str, ChangeLog] = {}
        self._user_counter = 0
        self._counters: dict[str, int] = {}
        self._incident_counter = 1000 + index * 100000
        self._pinned: set[str] = set()  # object ids random pickers never change or delete
        # td-graph's own service principal and Microsoft Graph's, in this tenant (discovery).
        self.sp_id = stable_uuid(tenant_id, "sp", client_id)
        self.graph_sp_id = stable_uuid(tenant_id, "graph-sp")

    # ------------------------------------------------------------------ descriptive
    @property
    def profile(self) -> str:
        return self._profile.name

    @profile.setter
    def profile(self, name: str) -> None:
        """Change the licence at run time (a tenant that buys or loses a licence).

        A profile that withholds permissions (``restricted``) sets ``permissions`` to every
        permission but those; leaving it restores "all granted" unless ``permissions`` was
        changed in between.
        """
        old, new = self._profile, get_profile(name)
        self._profile = new
        if new.withheld_permissions:
            self._permissions = self._profile_permissions(new)
        elif old.withheld_permissions and self._permissions == self._profile_permissions(old):
            self._permissions = None

    def _profile_permissions(self, profile: Profile) -> set[str]:
        return set(self._sim.role_names()) - set(profile.withheld_permissions)

    @property
    def permissions(self) -> set[str] | None:
        """Granted application permissions; None = every permission (the default)."""
        return self._permissions

    @permissions.setter
    def permissions(self, value: Iterable[str] | None) -> None:
        self._permissions = None if value is None else set(value)

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
        perms = self._permissions
        if perms is None:
            return True
        return any(p in perms for p in requirement.split("|"))

    @property
    def sign_ins(self) -> list[dict]:
        """Interactive sign-ins (what v1.0 ``/auditLogs/signIns`` serves); ``all_sign_ins`` has every type."""
        items = self.collections["sign_ins"].items
        cached = self.__dict__.get("_interactive")
        if cached is None or cached[0] is not items:
            cached = (items, [s for s in items if (s.get("signInEventTypes") or ("interactiveUser",))[0] == "interactiveUser"])
            self.__dict__["_interactive"] = cached
        return cached[1]

    @property
    def all_sign_ins(self) -> list[dict]:
        return self.collections["sign_ins"].items

    @property
    def directory_audits(self) -> list[dict]:
        return self.collections["directory_audits"].items

    @property
    def alerts(self) -> list[dict]:
        return self.collections["alerts"].items

    @property
    def incidents(self) -> list[dict]:
        return self.collections["incidents"].items

    @property
    def users(self) -> list[dict]:
        return self.collections["users"].items

    # ------------------------------------------------------------------ helpers
    def _now(self) -> float:
        return self._sim.now()

    def _times(self, n: int, start, end, rng: random.Random | None = None) -> list[float]:
        now = self._now()
        lo = to_epoch(start, now - 86400.0)
        hi = to_epoch(end, now - 180.0)
        if hi < lo:
            raise ValueError("end is before start")
        uni = (rng or self.rng).uniform
        return sorted((uni(lo, hi) for _ in range(n)), reverse=True)

    def _user_pool(self) -> list[tuple]:
        users = self.users
        if not users:
            users = gen.make_users(random.Random(self.seed + 1), 20, self.domain, 0, self._now())
        return [(u["id"], u["displayName"], u["userPrincipalName"]) for u in users]

    def _set_visibility(self, objs: list[dict], field: str, visible_at, latency, rng: random.Random | None = None) -> None:
        if visible_at is not None:
            at = to_epoch(visible_at, 0.0)
            for o in objs:
                o["visible_at"] = at
        elif latency is not None:
            lo, hi = latency
            uni = (rng or self.rng).uniform
            for o in objs:
                o["visible_at"] = parse_ts(o[field]) + uni(lo, hi)

    def _next(self, name: str) -> int:
        value = self._counters.get(name, 0)
        self._counters[name] = value + 1
        return value

    # ------------------------------------------------------------------ change logs (delta)
    def _log(self, collection: str) -> ChangeLog:
        log = self._logs.get(collection)
        if log is None:
            log = self._logs.setdefault(collection, ChangeLog())
        return log

    def _record(self, collection: str, ids: Iterable[str], removed: str | None = None,
                changed: Iterable[frozenset[str] | None] | None = None) -> None:
        """Log changes; ``changed``: per id, the properties the change touched (None: all)."""
        log = self._log(collection)
        touched = list(changed) if changed is not None else None
        for i, oid in enumerate(ids):
            if removed is None:
                log.removed.pop(oid, None)
            else:
                log.removed[oid] = removed
            log.changes.append(oid)
            log.fields.append(touched[i] if touched is not None and i < len(touched) else None)

    def delta_seq_of(self, collection: str) -> int:
        """How many changes the collection's log holds (a delta token's position)."""
        return len(self._log(collection).changes)

    @property
    def delta_seq(self) -> int:
        return self.delta_seq_of("users")

    def changed_ids(self, since: int, upto: int, collection: str = "users",
                    tracked: Iterable[str] | None = None) -> list[str]:
        """Distinct ids changed in (since, upto], ordered by their latest change.  With
        ``tracked`` (a delta round's properties), a change that touched none of them is not
        one: Graph's delta tracks only the properties selected (or its default set)."""
        log = self._log(collection)
        want = frozenset(tracked) if tracked is not None else None
        seen: dict[str, None] = {}
        for oid, touched in zip(log.changes[since:upto], log.fields[since:upto]):
            if want is not None and touched is not None and not (touched & want):
                continue
            seen.pop(oid, None)
            seen[oid] = None
        return list(seen)

    @staticmethod
    def _touched(old: list[dict], new: list[dict]) -> list[frozenset[str]]:
        """Per pair, the properties whose values differ."""
        return [frozenset(k for k in set(a) | set(b) if a.get(k) != b.get(k)) for a, b in zip(old, new)]

    def object_state(self, collection: str, obj_id: str) -> dict | str | None:
        """The current object, its removal reason ("changed"/"deleted"), or None if never seen."""
        obj = self.collection(collection).get(obj_id)
        if obj is not None:
            return obj
        return self._log(collection).removed.get(obj_id)

    def user_state(self, user_id: str) -> dict | str | None:
        return self.object_state("users", user_id)

    # ------------------------------------------------------------------ generic object API
    def add_objects(self, collection: str, objs: list[dict], *, visible_at=None) -> list[dict]:
        """Add ready-made Graph dicts to any collection (how new sources get data).

        Each needs an ``id`` and, for a time-ordered collection, its order field as Graph
        text.  ``visible_at`` defaults to the object's own value, else visible now.  The
        additions are recorded in the collection's change log (its delta returns them).
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
            self._record(collection, [o["id"] for o in objs])
        return objs

    def find_object(self, collection: str, id_or_key: str, key_field: str = "id") -> dict | None:
        """The current object whose ``key_field`` equals ``id_or_key`` (strings compared
        case-insensitively, as Entra compares ids and UPNs), or None.

        The dict returned is a snapshot: stored objects are replaced, never mutated, so call
        again after a change to see it.
        """
        coll = self.collection(collection)
        if key_field == "id" and isinstance(id_or_key, str):
            hit = coll.get(id_or_key)
            if hit is not None:
                return hit
        want = id_or_key.casefold() if isinstance(id_or_key, str) else id_or_key
        for o in coll.items:
            v = o.get(key_field)
            if v == id_or_key or (isinstance(v, str) and isinstance(want, str) and v.casefold() == want):
                return o
        return None

    def update_object(self, collection: str, obj_id: str, **fields) -> dict:
        """Change an object in place (same id, same place in the collection) and record the
        change, so the next delta round of that collection returns it.  Returns the new dict.

        ``KeyError`` if there is no such object.  ``id`` cannot be changed.
        """
        if "id" in fields:
            raise ValueError("an object's id cannot be changed")
        with self.lock:
            obj = self.find_object(collection, obj_id)
            if obj is None:
                raise KeyError(f"no object {obj_id!r} in {collection!r}")
            new = {**obj, **fields}
            self.collection(collection).replace([new])
            self._record(collection, [new["id"]], changed=[frozenset(fields)])
        return new

    def _pick(self, collection: str, n_or_ids, *, visible_only: bool = False) -> list[dict]:
        coll = self.collection(collection)
        if isinstance(n_or_ids, int):
            now = self._now()
            pool = [o for o in coll.items if o["id"] not in self._pinned and (not visible_only or o["visible_at"] <= now)]
            return self.xrng.sample(pool, min(n_or_ids, len(pool)))
        out = []
        for i in n_or_ids:
            o = coll.get(i)
            if o is None:
                raise KeyError(f"no object {i!r} in {collection!r}")
            out.append(o)
        return out

    def change_objects(self, collection: str, n_or_ids) -> list[dict]:
        """Ordinary changes on ``n`` random objects (or these ids) of a collection, recorded for delta.

        Users: job title, office, department, phone; groups: description; devices: last
        sign-in, compliance; applications: a new secret; service principals: a tag; Intune:
        sync time/compliance, policy versions; registration details: a new method; risky users,
        consent requests, secure-score controls, incidents and alerts: their own progressions
        (each area's ``_change``).
        """
        now = self._now()
        with self.lock:
            chosen = self._pick(collection, n_or_ids, visible_only=collection in ("alerts", "incidents"))
            new = self._change(collection, chosen, now)
            self.collection(collection).replace(new)
            self._record(collection, [o["id"] for o in new], changed=self._touched(chosen, new))
            self._after_change(collection, new)
        return new

    def _change(self, collection: str, chosen: list[dict], now: float) -> list[dict]:
        """New versions of ``chosen``; the per-area parts override this for their own collections."""
        if collection in CHANGERS:
            return [CHANGERS[collection](self.xrng, o, now) for o in chosen]
        raise ValueError(f"no ordinary change is defined for {collection!r}; use update_object()")

    def _after_change(self, collection: str, new: list[dict]) -> None:
        """Follow-up of a recorded change (alerts move their incidents); nothing by default."""

    def delete_objects(self, collection: str, n_or_ids, permanent: bool = False) -> list[dict]:
        """Remove objects: delta reports ``@removed`` reason ``changed`` (soft, restorable) or ``deleted``."""
        with self.lock:
            gone = self._pick(collection, n_or_ids)
            self.collection(collection).remove({o["id"] for o in gone})
            self._record(collection, [o["id"] for o in gone], "deleted" if permanent else "changed")
        return gone

    # ------------------------------------------------------------------ delta tokens
    def expire_delta_tokens(self, mode: str = "410") -> None:
        """Invalidate every outstanding delta/skip token of every delta endpoint.

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
