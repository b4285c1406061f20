"""Baseline (c) of the throughput benchmark: the official Microsoft Graph Python SDK.

Runs in its own virtualenv (``.cache/bench-sdk-venv``, made by ``throughput.py`` on first use
with ``pip install msgraph-sdk azure-identity``; the SDK is not a td-graph dependency).

``azure.identity.aio.ClientSecretCredential`` with ``authority`` = the simulator (and instance
discovery off) gets the token from the simulator's login endpoint; ``GraphServiceClient`` with
its base URL pointed at the simulator sends ``GET /v1.0/auditLogs/signIns`` with the same
``$filter`` and ``$top`` td-graph sends, and ``msgraph_core``'s ``PageIterator`` follows the
nextLinks.  The callback only counts items (it does not even serialise them back), which
favours the SDK.  TLS trust: ``SSL_CERT_FILE`` (httpx, aiohttp) and ``REQUESTS_CA_BUNDLE``.

Stops after SIM_LIMIT items.  Prints one JSON line: records, pages, seconds (from the first
request), first_page (seconds until page 1 was parsed: includes the SDK's lazy imports) and
steady (records per second after page 1).

Environment: SIM_BASE, SIM_TENANT, SIM_CLIENT, SIM_SECRET, SIM_FILTER, SIM_LIMIT.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


async def main() -> int:
    from azure.identity.aio import ClientSecretCredential
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph import GraphServiceClient
    from msgraph.generated.audit_logs.sign_ins.sign_ins_request_builder import SignInsRequestBuilder
    from msgraph_core.tasks.page_iterator import PageIterator

    base = os.environ["SIM_BASE"]
    limit = int(os.environ.get("SIM_LIMIT", "1000"))
    cred = ClientSecretCredential(os.environ["SIM_TENANT"], os.environ["SIM_CLIENT"], os.environ["SIM_SECRET"],
                                  authority=base, disable_instance_discovery=True)
    client = GraphServiceClient(cred, scopes=["https://graph.microsoft.com/.default"])
    client.request_adapter.base_url = base + "/v1.0"
    query = SignInsRequestBuilder.SignInsRequestBuilderGetQueryParameters(filter=os.environ["SIM_FILTER"], top=1000)
    t0 = time.perf_counter()
    marks: list[tuple[int, float]] = []
    count = 0

    def on_item(item) -> bool:  # noqa: ANN001
        nonlocal count
        if count % 1000 == 0:
            marks.append((count, time.perf_counter()))  # a new page has just been parsed
        count += 1
        return count < limit

    try:
        first = await client.audit_logs.sign_ins.get(request_configuration=RequestConfiguration(query_parameters=query))
        it = PageIterator(first, client.request_adapter)
        await it.iterate(on_item)
    finally:
        await cred.close()
    t1 = time.perf_counter()
    first_page = marks[0][1] - t0 if marks else t1 - t0
    # From page 1 parsed to the end: fetching and parsing pages 2..K (count - 1000 items).
    steady = (count - 1000) / (t1 - marks[0][1]) if len(marks) >= 2 and t1 > marks[0][1] else None
    sys.stdout.write(json.dumps({"records": count, "pages": len(marks), "seconds": t1 - t0,
                                 "first_page": first_page, "steady": steady}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
