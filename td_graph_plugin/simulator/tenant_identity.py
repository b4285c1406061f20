"""Identity Protection data of a simulated tenant: risky users, risk detections, risky service
principals and their detections."""

from __future__ import annotations

from .gen_identity import (change_risky_user, make_risk_detection, make_risky_service_principal, make_risky_user,
                           make_sp_risk_detection)
from .tenant_base import TenantBase
from .timefmt import parse_ts

__all__ = ["IdentityProtectionData"]


class IdentityProtectionData(TenantBase):
    """``/identityProtection/*`` collections (risky users keep their user's id)."""

    # -- Identity Protection
    def add_risky_users(self, n: int, *, start=None, end=None) -> list[dict]:
        """``n`` users (not yet risky) become risky users (id = user id)."""
        with self.lock:
            rng = self.xrng
            have = {o["id"] for o in self.collection("risky_users").items}
            pool = [u for u in self._user_pool() if u[0] not in have]
            chosen = rng.sample(pool, min(n, len(pool)))
            times = self._times(len(chosen), start, end, rng)
            objs = [make_risky_user(rng, u, t) for u, t in zip(chosen, times)]
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
            objs = [make_risk_detection(rng, users[rng.randrange(len(users))], t, timing)
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
            objs = [make_risky_service_principal(rng, sp, t) for sp, t in zip(chosen, times)]
            self.add_objects("risky_service_principals", objs)
        return objs

    def add_service_principal_risk_detections(self, n: int, *, start=None, end=None, visible_at=None,
                                              latency=None) -> list[dict]:
        with self.lock:
            rng = self.xrng
            sps = self._tenant_sps()
            if not sps:
                return []
            objs = [make_sp_risk_detection(rng, sps[rng.randrange(len(sps))], t)
                    for t in self._times(n, start, end, rng)]
            self._set_visibility(objs, "detectedDateTime", visible_at, latency, rng)
            self.add_objects("service_principal_risk_detections", objs)
        return objs

    def _change(self, collection: str, chosen: list[dict], now: float) -> list[dict]:
        if collection == "risky_users":
            return [change_risky_user(self.xrng, o, now - self.xrng.uniform(5.0, 60.0)) for o in chosen]
        return super()._change(collection, chosen, now)
