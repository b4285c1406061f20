"""A custom source in one file: the tenant's domains (``GET /v1.0/domains``), as a snapshot.

Why domains: a domain added, verified or switched to federated is a classic persistence step
(an attacker federating a domain can mint tokens for its users), and td-graph's built-in
catalogue does not read ``/domains``.  A snapshot source reads the whole collection every
``interval`` and emits a record only for a domain that is new or changed (td-graph keeps a hash
per object), plus a removal record (``"removed": "deleted"``) for a domain that disappeared.

Permission: ``Domain.Read.All`` (application), or ``Directory.Read.All`` which includes it.
Neither is in the onboarding guide's permission table for td-graph: grant it on the app
registration and give admin consent before enabling this source, or it is reported as
``forbidden`` (``td-graph doctor`` shows the plan).

Enable: copy this file into the folder named by ``hooks_dir`` in td-graph.yaml; the source is
then ``local.domains`` in ``td-graph sources``, selected by ``sources.include: [all]`` or by
name, and tuned under ``sources.settings.local.domains`` like any built-in source.
"""

from __future__ import annotations

from typing import Callable

from td_graph_plugin import SourceSpec, hookimpl

DOMAINS = SourceSpec(
    name="local.domains",
    path="/domains",
    mode="snapshot",
    permissions=["Domain.Read.All|Directory.Read.All"],  # "A|B": either one is enough
    interval="1h",
    throttle_class="directory",
    description="Tenant domains (verification and authentication type changes)",
)


@hookimpl
def td_graph_register_sources(register: Callable[[SourceSpec], None]) -> None:
    register(DOMAINS)
