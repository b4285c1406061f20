"""TLS is always verified, also with the preloaded per-bundle SSL context."""

from __future__ import annotations

import pytest
import requests

from td_graph_plugin.config import TenantConfig
from td_graph_plugin.graph.http import build_session
from td_graph_plugin.simulator import GraphSimulator


def tenant(**kw):
    return TenantConfig(name="t", tenant_id="00000000-0000-0000-0000-000000000001", client_id="11111111-1111-1111-1111-111111111111", **kw)


def test_unknown_ca_is_rejected_and_extra_ca_is_trusted(tmp_path):
    with GraphSimulator(workdir=str(tmp_path)) as sim:
        url = sim.base_url + "/common/discovery/keys"
        plain = build_session(tenant())
        with pytest.raises(requests.exceptions.SSLError):
            plain.get(url, timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            plain.get(url, timeout=5, verify=False)  # a caller cannot switch verification off
        trusted = build_session(tenant(ca_bundle=sim.ca_path))
        response = trusted.get(url, timeout=5)
        assert response.status_code < 500
        # Hostname checking stays on: the simulator's certificate is for 127.0.0.1/localhost.
        assert trusted.adapters["https://"]._ssl_context.check_hostname is True
