"""Intune data of a simulated tenant: managed devices, compliance policies, device configurations, audit events."""

from __future__ import annotations

from .gen_intune import make_compliance_policies, make_device_configurations, make_intune_audit_event, make_managed_device
from .tenant_base import TenantBase

__all__ = ["IntuneData"]


class IntuneData(TenantBase):
    """``/deviceManagement/*`` collections."""

    # -- Intune
    def add_managed_devices(self, n: int) -> list[dict]:
        with self.lock:
            users = self._user_pool()
            now = self._now()
            rng = self.xrng
            objs = [make_managed_device(rng, users[rng.randrange(len(users))], now) for _ in range(n)]
            self.add_objects("managed_devices", objs)
        return objs

    def add_intune_policies(self) -> None:
        with self.lock:
            now = self._now()
            self.add_objects("compliance_policies", make_compliance_policies(self.xrng, now))
            self.add_objects("device_configurations", make_device_configurations(self.xrng, now))

    def add_intune_audit_events(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        with self.lock:
            rng = self.xrng
            users = self._user_pool()
            objs = [make_intune_audit_event(rng, t, users[rng.randrange(len(users))])
                    for t in self._times(n, start, end, rng)]
            self._set_visibility(objs, "activityDateTime", visible_at, latency, rng)
            self.add_objects("intune_audit_events", objs)
        return objs
