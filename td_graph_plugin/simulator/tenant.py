"""A simulated tenant: its app registration, licence profile, data and change log.

Data lives in ``Collection`` objects: a list of plain Graph dicts in the order the endpoint
serves them plus a parallel list of sort keys.  Writers build a new pair and swap it in one
assignment (copy-on-write), so request threads read a consistent view with no lock and a
page being served never sees a half-applied change.  Stored dicts are never mutated.

Every object carries ``visible_at`` (epoch seconds, internal, stripped on output): an
object is served only once ``visible_at <= now``, which models Entra's ingestion latency
(graph-facts §0.7) and lets tests create "late" events deliberately.

Every collection has a change log (one entry per add/change/delete) that its delta endpoint
(``/users/delta``, ``/groups/delta``, ...) replays from a sequence number;
``expire_delta_tokens`` and ``revoke_tokens`` bump generation counters that outstanding
tokens are checked against.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
from typing import TYPE_CHECKING, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import gen_more as gm
from . import generators as gen
from .endpoints import collection_orders
from .profiles import Profile, get_profile
from .timefmt import parse_ts, to_epoch

if TYPE_CHECKING:  # pragma: no cover
    from .server import GraphSimulator

__all__ = ["Collection", "SimTenant", "DEFAULT_VOLUMES", "DELTA_EXPIRY_MODES"]

# Object counts a new tenant gets (``add_tenant(volumes=...)`` overrides any of them).  Modest on
# purpose: ``td-graph demo`` reads every source.  Derived, not listed: incidents (from alerts),
# authentication-method registration details (one per user), service principals (one per
# application, the managed identities, td-graph's, Microsoft Graph's and a few first-party ones),
# the 20 Secure Score controls, 6 compliance policies and 8 device configurations.
DEFAULT_VOLUMES = {
    "users": 120, "sign_ins": 300, "directory_audits": 100, "alerts": 40,
    "sign_ins_non_interactive": 60, "sign_ins_service_principal": 20, "sign_ins_managed_identity": 15,
    "provisioning": 40, "secure_score_days": 30, "risky_users": 20, "risk_detections": 50,
    "risky_service_principals": 6, "service_principal_risk_detections": 10, "groups": 25, "devices": 30,
    "applications": 12, "managed_identities": 4, "app_consent_requests": 6, "managed_devices": 30,
    "intune_audit_events": 40,
}
DELTA_EXPIRY_MODES = ("410", "syncStateNotFound")
_DOMAINS = ("contoso", "fabrikam", "northwind", "adatum", "tailspin", "wingtip", "litware", "proseware")


class Collection:
    """Objects in served order with ascending sort keys (``-epoch`` when newest-first)."""

    def __init__(self, order_field: str | None, descending: bool = True):
        self.order_field = order_field
        self.descending = descending
        self._data: tuple[list[dict], list[float]] = ([], [])
        self._idx: tuple[list[dict], dict[str, int]] | None = None
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

    def index(self) -> dict[str, int]:
        """id -> position in ``items`` (cached per items list; one attribute, so thread-safe)."""
        items = self._data[0]
        cached = self._idx
        if cached is None or cached[0] is not items:
            cached = (items, {o["id"]: i for i, o in enumerate(items)})
            self._idx = cached
        return cached[1]

    def get(self, obj_id: str) -> dict | None:
        """The current object with this id, or None (lock-free, consistent)."""
        items = self._data[0]
        cached = self._idx
        if cached is None or cached[0] is not items:
            cached = (items, {o["id"]: i for i, o in enumerate(items)})
            self._idx = cached
        i = cached[1].get(obj_id)
        return items[i] if i is not None else None

    def replace(self, new_objs: Iterable[dict]) -> None:
        """Swap in new versions of existing objects (same id), in one assignment.  An object
        whose order field changed moves to its new sorted position."""
        new_objs = list(new_objs)
        items, keys = self._data
        idx = self.index()
        if self.order_field is not None and any(
                o.get(self.order_field) != items[idx[o["id"]]].get(self.order_field) for o in new_objs):
            by_id = {o["id"]: o for o in new_objs}
            pairs = [(k, o) for k, o in zip(keys, items) if o["id"] not in by_id]
            pairs.extend((self._key(o), o) for o in by_id.values())
            pairs.sort(key=lambda p: p[0])
            self._data = ([p[1] for p in pairs], [p[0] for p in pairs])
            return
        items = list(items)
        for o in new_objs:
            items[idx[o["id"]]] = o
        self._data = (items, keys)
        self._idx = (items, idx)

    def remove(self, ids: set[str]) -> None:
        items, keys = self._data
        kept = [(k, o) for k, o in zip(keys, items) if o["id"] not in ids]
        self._data = ([p[1] for p in kept], [p[0] for p in kept])

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


class _ChangeLog:
    """The change log of one collection: ids in change order, and removal reasons."""

    __slots__ = ("changes", "removed")

    def __init__(self) -> None:
        self.changes: list[str] = []  # sequence number = index + 1
        self.removed: dict[str, str] = {}  # id -> "changed" | "deleted"


class SimTenant:
    """One tenant of the simulator (use ``GraphSimulator.add_tenant`` to make one).

    Data: ``collections`` (one per endpoint-table collection name), filled by ``populate`` and
    by the ``add_*`` methods.  Every collection has a change log that its delta endpoint (if it
    has one) replays: ``add_objects``/``change_objects``/``update_object``/``delete_objects``
    record into it.  ``permissions`` (None = every permission granted) and ``profile`` (the
    licence) are read on every request, so changing them takes effect on the next one.
    ``ext`` is a free dict for modules that keep extra per-tenant state.
    """

    def __init__(self, sim: "GraphSimulator", *, profile: str, tenant_id: str, client_id: str,
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
        self._logs: dict[str, _ChangeLog] = {}
        self._user_counter = 0
        self._counters: dict[str, int] = {}
        self._incident_counter = 1000 + index * 100000
        self._pinned: set[str] = set()  # object ids random pickers never change or delete
        # td-graph's own service principal and Microsoft Graph's, in this tenant (discovery).
        self.sp_id = gm.stable_uuid(tenant_id, "sp", client_id)
        self.graph_sp_id = gm.stable_uuid(tenant_id, "graph-sp")

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

    @staticmethod
    def _profile_permissions(profile: Profile) -> set[str]:
        from .graph_roles import role_names

        return set(role_names()) - set(profile.withheld_permissions)

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

    def __repr__(self) -> str:
        return f"SimTenant(tenant_id={self.tenant_id!r}, profile={self.profile!r})"

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
    def _log(self, collection: str) -> _ChangeLog:
        log = self._logs.get(collection)
        if log is None:
            log = self._logs.setdefault(collection, _ChangeLog())
        return log

    def _record(self, collection: str, ids: Iterable[str], removed: str | None = None) -> None:
        log = self._log(collection)
        for oid in ids:
            if removed is None:
                log.removed.pop(oid, None)
            else:
                log.removed[oid] = removed
            log.changes.append(oid)

    def delta_seq_of(self, collection: str) -> int:
        """How many changes the collection's log holds (a delta token's position)."""
        return len(self._log(collection).changes)

    @property
    def delta_seq(self) -> int:
        return self.delta_seq_of("users")

    def changed_ids(self, since: int, upto: int, collection: str = "users") -> list[str]:
        """Distinct ids changed in (since, upto], ordered by their latest change."""
        seen: dict[str, None] = {}
        for oid in self._log(collection).changes[since:upto]:
            seen.pop(oid, None)
            seen[oid] = None
        return list(seen)

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
            self._record(collection, [new["id"]])
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
        consent requests, secure-score controls, incidents and alerts: their own progressions.
        """
        now = self._now()
        with self.lock:
            chosen = self._pick(collection, n_or_ids, visible_only=collection in ("alerts", "incidents"))
            if collection == "users":
                new = [gen.change_user(self.rng, o) for o in chosen]
            elif collection == "alerts":
                new = [gen.update_alert(o, now - self.rng.uniform(5.0, 60.0)) for o in chosen]
            elif collection == "incidents":
                new = [gm.update_incident(self.xrng, o, now - self.xrng.uniform(5.0, 60.0)) for o in chosen
                       if o.get("status") != "redirected"]
            elif collection == "risky_users":
                new = [gm.change_risky_user(self.xrng, o, now - self.xrng.uniform(5.0, 60.0)) for o in chosen]
            elif collection == "app_consent_requests":
                users = self._user_pool()
                new = [gm.change_consent_request(self.xrng, o, users, now - 30.0) for o in chosen]
            elif collection == "secure_score_control_profiles":
                admin = self._user_pool()[0][2]
                new = [gm.change_control_profile(self.xrng, o, now - 30.0, admin) for o in chosen]
            elif collection in gm.CHANGERS:
                new = [gm.CHANGERS[collection](self.xrng, o, now) for o in chosen]
            else:
                raise ValueError(f"no ordinary change is defined for {collection!r}; use update_object()")
            self.collection(collection).replace(new)
            self._record(collection, [o["id"] for o in new])
            if collection == "alerts":
                self._touch_incidents(new)
        return new

    def delete_objects(self, collection: str, n_or_ids, permanent: bool = False) -> list[dict]:
        """Remove objects: delta reports ``@removed`` reason ``changed`` (soft, restorable) or ``deleted``."""
        with self.lock:
            gone = self._pick(collection, n_or_ids)
            self.collection(collection).remove({o["id"] for o in gone})
            self._record(collection, [o["id"] for o in gone], "deleted" if permanent else "changed")
        return gone

    # ------------------------------------------------------------------ sign-ins, audits
    def add_sign_ins(self, n: int, *, start=None, end=None, visible_at=None, latency=None,
                     event_type: str = "interactiveUser") -> list[dict]:
        """Add ``n`` sign-ins, createdDateTime uniform in [start, end] (default: last 24 h to now-3 min).

        ``visible_at`` (datetime or epoch) hides them until then; ``latency=(lo, hi)`` seconds
        makes each visible at createdDateTime + uniform(lo, hi) instead.  ``event_type`` is
        one of ``generators.SIGN_IN_EVENT_TYPES`` (v1.0 serves ``interactiveUser`` only;
        servicePrincipal / managedIdentity sign-ins name a service principal, not a user).
        """
        if event_type not in gen.SIGN_IN_EVENT_TYPES:
            raise ValueError(f"event_type must be one of {gen.SIGN_IN_EVENT_TYPES}")
        with self.lock:
            objs = gen.make_sign_ins(self.rng, self._times(n, start, end), self._user_pool(), event_type)
            if event_type in ("servicePrincipal", "managedIdentity"):
                self._as_workload_sign_ins(objs, event_type)
            self._set_visibility(objs, "createdDateTime", visible_at, latency)
            self.collections["sign_ins"].extend(objs)
        return objs

    def _as_workload_sign_ins(self, objs: list[dict], event_type: str) -> None:
        """Turn fresh (not yet stored) sign-ins into service principal / managed identity ones."""
        sps = [o for o in self.collection("service_principals").items
               if (o.get("servicePrincipalType") == "ManagedIdentity") == (event_type == "managedIdentity")
               and o.get("appOwnerOrganizationId") != gm.MICROSOFT_TENANT_ID]
        if not sps:
            sps = [gm.make_service_principal(self.xrng, gm.stable_uuid(self.tenant_id, "fallback-app"), "Automation",
                                             self.tenant_id)]
        rng = self.xrng
        for o in objs:
            sp = sps[rng.randrange(len(sps))]
            failed = rng.random() < 0.04
            o.update({
                "userDisplayName": None, "userPrincipalName": None, "userId": "",
                "appId": sp["appId"], "appDisplayName": sp["displayName"],
                "servicePrincipalId": sp["id"], "servicePrincipalName": sp["displayName"],
                "resourceDisplayName": "Microsoft Graph", "resourceId": self.graph_sp_id,
                "clientAppUsed": None, "conditionalAccessStatus": "notApplied", "appliedConditionalAccessPolicies": [],
                "deviceDetail": {"deviceId": "", "displayName": "", "operatingSystem": "", "browser": "",
                                 "isCompliant": False, "isManaged": False, "trustType": ""},
                "riskDetail": "none", "riskLevelAggregated": "none", "riskLevelDuringSignIn": "none", "riskState": "none",
                "riskEventTypes": [], "riskEventTypes_v2": [],
                "clientCredentialType": "managedIdentity" if event_type == "managedIdentity" else
                ("certificate" if rng.random() < 0.4 else "clientSecret"),
                "servicePrincipalCredentialKeyId": None if event_type == "managedIdentity" else gen.guid(rng),
                "managedServiceIdentity": {
                    "msiType": "systemAssigned" if event_type == "managedIdentity" else "none",
                    "associatedResourceId": sp.get("alternativeNames", [None, None])[-1] if event_type == "managedIdentity" else None,
                    "federatedTokenId": None, "federatedTokenIssuer": None,
                },
                "status": ({"errorCode": 7000215, "failureReason": "Invalid client secret is provided.",
                            "additionalDetails": None} if failed and event_type == "servicePrincipal"
                           else {"errorCode": 0, "failureReason": None, "additionalDetails": None}),
            })

    def add_directory_audits(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        with self.lock:
            objs = gen.make_directory_audits(self.rng, self._times(n, start, end), self._user_pool(), self.tenant_id)
            self._set_visibility(objs, "activityDateTime", visible_at, latency)
            self.collections["directory_audits"].extend(objs)
        return objs

    def add_provisioning(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        """Provisioning events (activityDateTime in [start, end], default last 24 h to now-3 min)."""
        with self.lock:
            users = self._user_pool()
            sps = [o for o in self.collection("service_principals").items
                   if o.get("appOwnerOrganizationId") == self.tenant_id and o.get("servicePrincipalType") == "Application"]
            if not sps:
                sps = [{"id": gm.stable_uuid(self.tenant_id, "prov-sp"), "appId": gm.stable_uuid(self.tenant_id, "prov-app"),
                        "displayName": "Salesforce"}]
            rng = self.xrng
            objs = [gm.make_provisioning(rng, t, users[rng.randrange(len(users))], self.tenant_id, sps[rng.randrange(len(sps))])
                    for t in self._times(n, start, end, rng)]
            self._set_visibility(objs, "activityDateTime", visible_at, latency, rng)
            self.add_objects("provisioning", objs)
        return objs

    # ------------------------------------------------------------------ Defender XDR
    def add_alerts(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        """Add ``n`` alerts_v2 and the incidents that group them (1-3 alerts each; about one in
        eight incidents also has a ``redirected`` twin pointing at it, as Defender's merges do)."""
        with self.lock:
            objs = gen.make_alerts(self.rng, self._times(n, start, end), self._user_pool(), self.tenant_id,
                                   self.domain, self._now(), self._incident_counter)
            self._set_visibility(objs, "createdDateTime", visible_at, latency)
            incidents = self._group_into_incidents(objs)
            self.collections["alerts"].extend(objs)
            self.add_objects("incidents", incidents)
        return objs

    def _group_into_incidents(self, alerts: list[dict]) -> list[dict]:
        rng = self.xrng
        ordered = sorted(alerts, key=lambda a: a["createdDateTime"])
        out: list[dict] = []
        i = 0
        while i < len(ordered):
            size = min(len(ordered) - i, 1 + (rng.random() < 0.35) + (rng.random() < 0.15))
            group = ordered[i:i + size]
            i += size
            iid = str(self._incident_counter)
            self._incident_counter += 1
            for a in group:
                a["incidentId"] = iid
                a["incidentWebUrl"] = f"https://security.microsoft.com/incidents/{iid}?tid={self.tenant_id}"
            incident = gm.make_incident(rng, iid, group, self.tenant_id)
            out.append(incident)
            if rng.random() < 0.125:
                twin = str(self._incident_counter)
                self._incident_counter += 1
                out.append(gm.make_redirected_incident(twin, incident, self.tenant_id))
        return out

    def update_alerts(self, n_or_ids, *, lag: tuple[float, float] = (5.0, 60.0)) -> list[dict]:
        """Progress alerts (status, comment) and set lastUpdateDateTime = now - uniform(*lag).

        ``n_or_ids``: how many (picked from the visible alerts) or which ids.  Ids are kept.
        Their incidents' lastUpdateDateTime follows.
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
            self._record("alerts", [a["id"] for a in new])
            self._touch_incidents(new)
        return new

    def _touch_incidents(self, alerts: list[dict]) -> None:
        coll = self.collection("incidents")
        changed = []
        for a in alerts:
            inc = coll.get(a.get("incidentId") or "")
            if inc is not None and a["lastUpdateDateTime"] > inc["lastUpdateDateTime"]:
                changed.append({**inc, "lastUpdateDateTime": a["lastUpdateDateTime"]})
        if changed:
            latest: dict[str, dict] = {}
            for c in changed:
                if c["id"] not in latest or c["lastUpdateDateTime"] > latest[c["id"]]["lastUpdateDateTime"]:
                    latest[c["id"]] = c
            coll.replace(latest.values())
            self._record("incidents", list(latest))

    def update_incidents(self, n_or_ids, *, lag: tuple[float, float] = (5.0, 60.0)) -> list[dict]:
        """Progress incidents (active -> inProgress -> resolved, assignment, a comment; resolved
        ones get classification/determination) and set lastUpdateDateTime = now - uniform(*lag).
        Redirected incidents are never picked.  Ids are kept."""
        with self.lock:
            coll = self.collection("incidents")
            now = self._now()
            if isinstance(n_or_ids, int):
                pool = [o for o in coll.items if o["visible_at"] <= now and o.get("status") != "redirected"]
                chosen = self.xrng.sample(pool, min(n_or_ids, len(pool)))
            else:
                chosen = self._pick("incidents", n_or_ids)
            new = [gm.update_incident(self.xrng, o, now - self.xrng.uniform(*lag)) for o in chosen]
            coll.replace(new)
            self._record("incidents", [o["id"] for o in new])
        return new

    def add_secure_scores(self, days: int, *, end=None) -> list[dict]:
        """One secureScore per UTC day for ``days`` days up to ``end`` (default today), id ``{tenantId}_{date}``."""
        with self.lock:
            rng = self.xrng
            last_day = int(to_epoch(end, self._now()) // 86400) * 86400
            have = {o["id"] for o in self.collection("secure_scores").items}
            score = 45.0 + rng.uniform(0, 30)
            objs = []
            for d in range(days - 1, -1, -1):
                day = last_day - d * 86400
                score = max(5.0, score + rng.uniform(-1.5, 2.5))
                o = gm.make_secure_score(rng, self.tenant_id, day, score, len(self.users))
                if o["id"] not in have:
                    objs.append(o)
            self.add_objects("secure_scores", objs)
        return objs

    def add_control_profiles(self) -> list[dict]:
        with self.lock:
            rng = self.xrng
            have = {o["id"] for o in self.collection("secure_score_control_profiles").items}
            now = self._now()
            objs = [gm.make_control_profile(rng, row, self.tenant_id, now - rng.uniform(2 * 86400, 90 * 86400))
                    for row in gm.CONTROL_PROFILES if row[0] not in have]
            self.add_objects("secure_score_control_profiles", objs)
        return objs

    def change_control_profiles(self, n_or_ids) -> list[dict]:
        """A control's state changes (controlStateUpdates grows, lastModifiedDateTime moves)."""
        return self.change_objects("secure_score_control_profiles", n_or_ids)

    # ------------------------------------------------------------------ Identity Protection
    def add_risky_users(self, n: int, *, start=None, end=None) -> list[dict]:
        """``n`` users (not yet risky) become risky users (id = user id)."""
        with self.lock:
            rng = self.xrng
            have = {o["id"] for o in self.collection("risky_users").items}
            pool = [u for u in self._user_pool() if u[0] not in have]
            chosen = rng.sample(pool, min(n, len(pool)))
            times = self._times(len(chosen), start, end, rng)
            objs = [gm.make_risky_user(rng, u, t) for u, t in zip(chosen, times)]
            self.add_objects("risky_users", objs)
        return objs

    def change_risky_users(self, n_or_ids) -> list[dict]:
        """Risk state progresses (atRisk -> remediated / confirmedCompromised, or back to atRisk)."""
        return self.change_objects("risky_users", n_or_ids)

    def add_risk_detections(self, n: int, *, start=None, end=None, visible_at=None, latency=None,
                            timing: str | None = None, late_fraction: float = 0.0) -> list[dict]:
        """Risk detections whose lastUpdatedDateTime lies in [start, end] (default last 24 h).

        ``timing`` = "realtime" / "offline" picks the detection kinds.  By default each is
        visible 5-90 s after detection; ``late_fraction`` of the offline ones only 30 min to
        3 h after it (offline detections arrive late); ``visible_at``/``latency`` override.
        """
        with self.lock:
            rng = self.xrng
            users = self._user_pool()
            objs = [gm.make_risk_detection(rng, users[rng.randrange(len(users))], t, timing)
                    for t in self._times(n, start, end, rng)]
            if visible_at is None and latency is None:
                for o in objs:
                    delay = rng.uniform(5, 90)
                    if o["detectionTimingType"] == "offline" and rng.random() < late_fraction:
                        delay = rng.uniform(1800, 3 * 3600)
                    o["visible_at"] = parse_ts(o["detectedDateTime"]) + delay
            self._set_visibility(objs, "detectedDateTime", visible_at, latency, rng)
            self.add_objects("risk_detections", objs)
        return objs

    def _tenant_sps(self) -> list[dict]:
        return [o for o in self.collection("service_principals").items
                if o.get("appOwnerOrganizationId") == self.tenant_id and o["id"] not in self._pinned]

    def add_risky_service_principals(self, n: int, *, start=None, end=None) -> list[dict]:
        with self.lock:
            rng = self.xrng
            have = {o["id"] for o in self.collection("risky_service_principals").items}
            pool = [sp for sp in self._tenant_sps() if sp["id"] not in have]
            chosen = rng.sample(pool, min(n, len(pool)))
            times = self._times(len(chosen), start, end, rng)
            objs = [gm.make_risky_service_principal(rng, sp, t) for sp, t in zip(chosen, times)]
            self.add_objects("risky_service_principals", objs)
        return objs

    def add_service_principal_risk_detections(self, n: int, *, start=None, end=None, visible_at=None,
                                              latency=None) -> list[dict]:
        with self.lock:
            rng = self.xrng
            sps = self._tenant_sps()
            if not sps:
                return []
            objs = [gm.make_sp_risk_detection(rng, sps[rng.randrange(len(sps))], t)
                    for t in self._times(n, start, end, rng)]
            self._set_visibility(objs, "detectedDateTime", visible_at, latency, rng)
            self.add_objects("service_principal_risk_detections", objs)
        return objs

    # ------------------------------------------------------------------ directory
    def add_users(self, n: int) -> list[dict]:
        """``n`` users (and their authentication-method registration details)."""
        with self.lock:
            objs = gen.make_users(self.rng, n, self.domain, self._user_counter, self._now())
            self._user_counter += n
            self.collections["users"].extend(objs)
            self._record("users", [u["id"] for u in objs])
            now = self._now()
            rng = self.xrng
            self.add_objects("user_registration_details",
                             [gm.make_registration_details(rng, u, now, admin=u["jobTitle"] == "IT Admin") for u in objs])
        return objs

    def change_users(self, n_or_ids) -> list[dict]:
        """Attribute changes (job title, office, department, phone) on ``n`` users or these ids."""
        with self.lock:
            if isinstance(n_or_ids, int):
                pool = list(self.users)
                chosen = self.rng.sample(pool, min(n_or_ids, len(pool)))
            else:
                chosen = self._pick("users", n_or_ids)
            new = [gen.change_user(self.rng, u) for u in chosen]
            self.collections["users"].replace(new)
            self._record("users", [u["id"] for u in new])
        return new

    def delete_users(self, n_or_ids, permanent: bool = False) -> list[dict]:
        """Delete users: delta reports ``@removed`` reason ``changed`` (soft) or ``deleted``."""
        with self.lock:
            if isinstance(n_or_ids, int):
                pool = list(self.users)
                gone = self.rng.sample(pool, min(n_or_ids, len(pool)))
            else:
                gone = self._pick("users", n_or_ids)
            self.collections["users"].remove({u["id"] for u in gone})
            self._record("users", [u["id"] for u in gone], "deleted" if permanent else "changed")
        return gone

    def add_groups(self, n: int) -> list[dict]:
        with self.lock:
            now = self._now()
            objs = [gm.make_group(self.xrng, self._next("groups"), self.domain, now) for _ in range(n)]
            self.add_objects("groups", objs)
        return objs

    def add_devices(self, n: int) -> list[dict]:
        with self.lock:
            now = self._now()
            objs = [gm.make_device(self.xrng, self._next("devices"), now) for _ in range(n)]
            self.add_objects("devices", objs)
        return objs

    def add_applications(self, n: int, *, managed_identities: int = 0) -> list[dict]:
        """App registrations, each with its service principal; plus ``managed_identities`` MI service principals."""
        with self.lock:
            now = self._now()
            rng = self.xrng
            apps = [gm.make_application(rng, self._next("applications"), self.domain, now) for _ in range(n)]
            self.add_objects("applications", apps)
            sps = [gm.make_service_principal(rng, a["appId"], a["displayName"], self.tenant_id) for a in apps]
            for _ in range(managed_identities):
                k = self._next("managed_identities")
                name = ("vm-build-agent", "func-ingest", "logic-siem-export", "aks-workload")[k % 4] + f"-{k // 4 + 1:02d}"
                sp = gm.make_service_principal(rng, gen.guid(rng), name, self.tenant_id)
                sp["servicePrincipalType"] = "ManagedIdentity"
                sp["tags"] = []
                sp["alternativeNames"] = ["isExplicit=False",
                                          f"/subscriptions/{gm.stable_uuid(self.tenant_id, 'sub')}/resourcegroups/rg-prod/"
                                          f"providers/Microsoft.Compute/virtualMachines/{name}"]
                sps.append(sp)
            self.add_objects("service_principals", sps)
        return apps

    def _add_system_objects(self) -> None:
        """td-graph's app registration and service principal, Microsoft Graph's service principal,
        and other first-party ones: pinned (random changes and deletions never pick them)."""
        from .graph_roles import GRAPH_APP_ID, app_role, role_names

        rng = self.xrng
        now = self._now()
        app = gm.make_application(rng, 0, self.domain, now, app_id=self.client_id, display_name="td-graph (ThreatDefence)")
        app["id"] = gm.stable_uuid(self.tenant_id, "app", self.client_id)
        ours = gm.make_service_principal(rng, self.client_id, "td-graph (ThreatDefence)", self.tenant_id, sp_id=self.sp_id)
        graph = gm.make_service_principal(rng, GRAPH_APP_ID, "Microsoft Graph", gm.MICROSOFT_TENANT_ID, sp_id=self.graph_sp_id,
                                          app_roles=[app_role(r) for r in role_names()], first_party=True)
        others = [gm.make_service_principal(rng, aid, name, gm.MICROSOFT_TENANT_ID, sp_id=gm.stable_uuid(self.tenant_id, "sp", aid),
                                             first_party=True)
                  for aid, name in gm.first_party_service_principals()]
        self._pinned.update({app["id"], ours["id"], graph["id"]} | {o["id"] for o in others})
        self.add_objects("applications", [app])
        self.add_objects("service_principals", [ours, graph] + others)

    # ------------------------------------------------------------------ governance
    def add_consent_requests(self, n: int) -> list[dict]:
        with self.lock:
            users = self._user_pool()
            now = self._now()
            objs = [gm.make_consent_request(self.xrng, self._next("consent"), users, now) for _ in range(n)]
            self.add_objects("app_consent_requests", objs)
        return objs

    def change_consent_requests(self, n_or_ids) -> list[dict]:
        """Another user asks, a scope is added, or a user request completes."""
        return self.change_objects("app_consent_requests", n_or_ids)

    # ------------------------------------------------------------------ Intune
    def add_managed_devices(self, n: int) -> list[dict]:
        with self.lock:
            users = self._user_pool()
            now = self._now()
            rng = self.xrng
            objs = [gm.make_managed_device(rng, users[rng.randrange(len(users))], now) for _ in range(n)]
            self.add_objects("managed_devices", objs)
        return objs

    def add_intune_policies(self) -> None:
        with self.lock:
            now = self._now()
            self.add_objects("compliance_policies", gm.make_compliance_policies(self.xrng, now))
            self.add_objects("device_configurations", gm.make_device_configurations(self.xrng, now))

    def add_intune_audit_events(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        with self.lock:
            rng = self.xrng
            users = self._user_pool()
            objs = [gm.make_intune_audit_event(rng, t, users[rng.randrange(len(users))])
                    for t in self._times(n, start, end, rng)]
            self._set_visibility(objs, "activityDateTime", visible_at, latency, rng)
            self.add_objects("intune_audit_events", objs)
        return objs

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

    # ------------------------------------------------------------------ bootstrap
    def populate(self, volumes: dict | None) -> None:
        vols = dict(DEFAULT_VOLUMES)
        if volumes:
            unknown = set(volumes) - set(DEFAULT_VOLUMES)
            if unknown:
                raise ValueError(f"unknown volume keys {sorted(unknown)}; known: {sorted(DEFAULT_VOLUMES)}")
            vols.update(volumes)
        # The first four keep their data for a given seed whatever is added after them.
        self.add_users(vols["users"])
        self.add_sign_ins(vols["sign_ins"])
        self.add_directory_audits(vols["directory_audits"])
        self.add_alerts(vols["alerts"])
        self._add_system_objects()
        self.add_applications(vols["applications"], managed_identities=vols["managed_identities"])
        self.add_groups(vols["groups"])
        self.add_devices(vols["devices"])
        for key, event_type in (("sign_ins_non_interactive", "nonInteractiveUser"),
                                ("sign_ins_service_principal", "servicePrincipal"),
                                ("sign_ins_managed_identity", "managedIdentity")):
            if vols[key]:
                self.add_sign_ins(vols[key], event_type=event_type)
        self.add_provisioning(vols["provisioning"])
        self.add_secure_scores(vols["secure_score_days"])
        self.add_control_profiles()
        self.add_risky_users(vols["risky_users"])
        self.add_risk_detections(vols["risk_detections"], late_fraction=0.1)
        self.add_risky_service_principals(vols["risky_service_principals"])
        self.add_service_principal_risk_detections(vols["service_principal_risk_detections"])
        self.add_consent_requests(vols["app_consent_requests"])
        self.add_managed_devices(vols["managed_devices"])
        self.add_intune_policies()
        self.add_intune_audit_events(vols["intune_audit_events"])
