"""Helpers every object generator shares: Microsoft's tenant id, timestamps, stable ids.

Kept apart so each per-area generator module (``gen_security``, ``gen_identity``,
``gen_audit``, ``gen_directory``, ``gen_intune``, ``gen_reports``) depends on it alone.
"""

from __future__ import annotations

import uuid

from .timefmt import format_ts

__all__ = ['MICROSOFT_TENANT_ID', 'ts', 'stable_uuid']

MICROSOFT_TENANT_ID = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # owner of Microsoft's first-party apps


def ts(epoch: float) -> str:
    """Graph's timestamp text with fractional seconds (most of these sources send them)."""
    return format_ts(epoch, frac=True)


def stable_uuid(*parts: str) -> str:
    """A uuid that depends only on ``parts`` (system objects keep their ids for a tenant)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "td-graph-sim:" + ":".join(parts)))
