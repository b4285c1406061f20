"""Defender XDR data of a simulated tenant: alerts_v2, the incidents that group them, Secure Score."""

from __future__ import annotations

from . import generators as gen
from .gen_security import (CONTROL_PROFILES, change_control_profile, make_control_profile, make_incident,
                           make_redirected_incident, make_secure_score, update_incident)
from .tenant_base import TenantBase
from .timefmt import to_epoch

__all__ = ["SecurityData"]


class SecurityData(TenantBase):
    """``/security/alerts_v2``, ``/security/incidents``, ``/security/secureScores`` and control profiles."""

    # -- Defender XDR
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
            incident = make_incident(rng, iid, group, self.tenant_id)
            out.append(incident)
            if rng.random() < 0.125:
                twin = str(self._incident_counter)
                self._incident_counter += 1
                out.append(make_redirected_incident(twin, incident, self.tenant_id))
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
            new = [update_incident(self.xrng, o, now - self.xrng.uniform(*lag)) for o in chosen]
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
                o = make_secure_score(rng, self.tenant_id, day, score, len(self.users))
                if o["id"] not in have:
                    objs.append(o)
            self.add_objects("secure_scores", objs)
        return objs

    def add_control_profiles(self) -> list[dict]:
        with self.lock:
            rng = self.xrng
            have = {o["id"] for o in self.collection("secure_score_control_profiles").items}
            now = self._now()
            objs = [make_control_profile(rng, row, self.tenant_id, now - rng.uniform(2 * 86400, 90 * 86400))
                    for row in CONTROL_PROFILES if row[0] not in have]
            self.add_objects("secure_score_control_profiles", objs)
        return objs

    def change_control_profiles(self, n_or_ids) -> list[dict]:
        """A control's state changes (controlStateUpdates grows, lastModifiedDateTime moves)."""
        return self.change_objects("secure_score_control_profiles", n_or_ids)

    def _change(self, collection: str, chosen: list[dict], now: float) -> list[dict]:
        if collection == "alerts":
            return [gen.update_alert(o, now - self.rng.uniform(5.0, 60.0)) for o in chosen]
        if collection == "incidents":
            return [update_incident(self.xrng, o, now - self.xrng.uniform(5.0, 60.0)) for o in chosen
                    if o.get("status") != "redirected"]
        if collection == "secure_score_control_profiles":
            admin = self._user_pool()[0][2]
            return [change_control_profile(self.xrng, o, now - 30.0, admin) for o in chosen]
        return super()._change(collection, chosen, now)

    def _after_change(self, collection: str, new: list[dict]) -> None:
        super()._after_change(collection, new)
        if collection == "alerts":
            self._touch_incidents(new)
