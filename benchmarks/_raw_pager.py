"""Baseline (b) of the throughput benchmark: the least a Graph collector can do.

A plain ``requests`` session (keep-alive, TLS verified against the simulator's CA), one token
from the client-credentials grant, then every page of ``/v1.0/auditLogs/signIns`` with the same
``$filter`` and ``$top`` td-graph sends: parse each page with orjson, wrap every item in
td-graph's envelope, serialise it with orjson and write it to /dev/null.  No paging checks,
no retries, no state, no prefetch.  Prints one JSON line: records, pages, seconds.

Environment: SIM_BASE, SIM_CA, SIM_TENANT, SIM_CLIENT, SIM_SECRET, SIM_FILTER, SIM_MAX_PAGES.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone

import orjson
import requests


def main() -> int:
    t0 = time.perf_counter()
    base, ca = os.environ["SIM_BASE"], os.environ["SIM_CA"]
    tenant, client, secret = os.environ["SIM_TENANT"], os.environ["SIM_CLIENT"], os.environ["SIM_SECRET"]
    max_pages = int(os.environ.get("SIM_MAX_PAGES", "100000"))
    s = requests.Session()
    s.trust_env = False
    s.verify = ca
    tok = s.post(f"{base}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client, "client_secret": secret,
        "scope": "https://graph.microsoft.com/.default"}, timeout=30)
    tok.raise_for_status()
    headers = {"Authorization": "Bearer " + tok.json()["access_token"], "Accept": "application/json"}
    url: str | None = f"{base}/v1.0/auditLogs/signIns"
    params: dict | None = {"$filter": os.environ["SIM_FILTER"], "$top": "1000"}
    collected_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    records = pages = 0
    dumps = orjson.dumps
    t_first = None
    with open(os.devnull, "wb") as out:
        while url and pages < max_pages:
            r = s.get(url, params=params, headers=headers, timeout=60)
            r.raise_for_status()
            data = orjson.loads(r.content)
            for item in data["value"]:
                out.write(dumps({"tenant": "bench", "tenant_id": tenant, "source": "audit_logs.sign_ins",
                                 "id": item["id"], "event_time": item["createdDateTime"],
                                 "collected_at": collected_at, "data": item}) + b"\n")
                records += 1
            pages += 1
            if t_first is None:
                t_first = time.perf_counter()
            url, params = data.get("@odata.nextLink"), None
    t1 = time.perf_counter()
    sys.stdout.write(orjson.dumps({"records": records, "pages": pages, "seconds": t1 - t0,
                                   "after_first_page": t1 - (t_first or t1)}).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
