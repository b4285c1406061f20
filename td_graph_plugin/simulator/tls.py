"""A throwaway CA and a server certificate for 127.0.0.1, made with trustme.

td-graph never disables TLS verification (contract: "Never verify=False"), so the simulator
serves real TLS and writes its CA to ``ca.pem``; clients pass that file as ``ca_bundle``.
"""

from __future__ import annotations

import os
import ssl

import trustme

__all__ = ["make_tls"]


def make_tls(workdir: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[ssl.SSLContext, str]:
    """(server SSLContext, path of the CA PEM written into ``workdir``)."""
    ca = trustme.CA()
    cert = ca.issue_cert(*hosts)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert.configure_cert(ctx)
    ca_path = os.path.join(workdir, "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    return ctx, ca_path
