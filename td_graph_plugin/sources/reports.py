"""Microsoft 365 usage reports: a 302 to a pre-authenticated CSV, read without our token.

The report function answers ``302 Found`` with a short-lived download URL that already carries
its own authorisation; sending our Bearer token there would leak it to another host, so the
download goes out with ``auth=False``.  The CSV becomes one record per user row.

The download URL is only fetched over https from a Microsoft report download host
(``DOWNLOAD_HOSTS``) or from the configured Graph endpoint's own origin (a proxy, a private
endpoint, the simulator), by the same strict URL rule as Graph's links
(``graph.clouds.link_problem``: no userinfo, backslash, fragment, whitespace, non-ASCII or
percent-encoded host).  Anything else fails the source with ``GraphForeignLink`` naming the
host; the body is capped at ``MAX_REPORT_CSV_BYTES``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from urllib.parse import urljoin
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import GraphForeignLink, GraphResponseError
from ..graph.clouds import display_host, link_problem

__all__ = ["office365_csv_pager", "CsvPage", "DOWNLOAD_HOSTS", "MAX_REPORT_CSV_BYTES", "download_problem",
           "ROW_ID_FIELD", "ROW_ID_COLUMNS", "row_id"]

# A report row's identity.  The active-user detail report has no object id: its columns are
# "Report Refresh Date, User Principal Name, Display Name, Is Deleted, Deleted Date, ...,
# Assigned Products" (https://learn.microsoft.com/graph/api/reportroot-getoffice365activeuserdetail).
# The UPN alone is not unique: a deleted user and a live one (or two deleted ones) can share it,
# so the id is a hash of (User Principal Name, Is Deleted, Deleted Date).  Display Name is left
# out (a rename would look like a removal plus a new user), and so is Assigned Products (a licence
# change would too).  With the tenant's concealed-names setting the UPN column holds an
# anonymised value; the hash keys on it the same way (whether that value is stable across
# refreshes is undocumented [U]).  UPNs compare case-insensitively, as Entra does.  The id is added to the row under
# ``ROW_ID_FIELD`` (td-graph's, not a report column) so dedup and sweeps key on it.
ROW_ID_FIELD = "td_graph_row_id"
ROW_ID_COLUMNS = ("User Principal Name", "Is Deleted", "Deleted Date")


def row_id(row: dict[str, Any]) -> str:
    """A stable id for one report row: sha256 of its identity columns, 32 hex digits."""
    key = "\x1f".join(str(row.get(c) or "").strip().casefold() for c in ROW_ID_COLUMNS)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

# Where Graph's usage-report functions redirect to.  Microsoft documents the 302's Location as
# "https://reports.office.com/data/download/JDFKdf2_eJXKS034dbc7e0t__XDe" ("If successful,
# this method returns a 302 Found response that redirects to a preauthenticated download URL
# for the report"), e.g. https://learn.microsoft.com/graph/api/reportroot-getoffice365activeusercounts
# and .../reportroot-getoffice365activationcounts; the report sources are global-cloud only.
DOWNLOAD_HOSTS: frozenset[str] = frozenset({"reports.office.com"})

# The largest report CSV read.  A D7 active-user detail report is ~1 KiB per user (a 200,000
# user tenant: ~200 MiB); 512 MiB bounds the memory a broken or hostile download can take.
MAX_REPORT_CSV_BYTES = 512 * 1024 * 1024


def download_problem(location: str, graph_base: str) -> str | None:
    """None when a report redirect may be fetched; otherwise why not (names no URL but its
    host).  Allowed: https on port 443 of a host in ``DOWNLOAD_HOSTS``, or the configured Graph
    endpoint's own origin."""
    if link_problem(location, graph_base) is None:
        return None
    for host in sorted(DOWNLOAD_HOSTS):
        if link_problem(location, f"https://{host}", "a report download host") is None:
            return None
    problem = link_problem(location, graph_base)
    if problem and problem.startswith("it points to"):
        allowed = ", ".join(f"https://{h}" for h in sorted(DOWNLOAD_HOSTS))
        return f"{problem[:problem.index(', not to')]}, neither a report download host ({allowed}) nor the Graph endpoint"
    return problem

@dataclass
class CsvPage:
    items: list[dict[str, Any]]
    next_link: str | None = None
    delta_link: str | None = None
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # False when the CSV header lacks a column td-graph relies on (``REQUIRED_COLUMNS``): the
    # snapshot collector then refuses to sweep, so a changed report never "deletes" every user.
    header_ok: bool = True


# The documented columns the records depend on (identity and event time; see ROW_ID_COLUMNS).
REQUIRED_COLUMNS = ("Report Refresh Date", *ROW_ID_COLUMNS)


def office365_csv_pager(client: Any, spec: Any, url: str, params: dict[str, str] | None) -> Iterator[CsvPage]:
    first = client.request(
        "GET",
        url,
        params=params or None,
        source=spec.name,
        throttle_class=spec.throttle_class,
        throttle_key=spec.name,
        allow_redirects=False,
        expect_json=False,
    )
    response = first
    if first.status_code in (301, 302, 303, 307, 308):
        location = first.headers.get("Location")
        if not location:
            raise GraphResponseError("report redirect without a Location header", status=first.status_code, path=spec.path)
        if location.startswith("/") and not location.startswith("//"):
            location = urljoin(first.url, location)  # relative to the report function's URL
        problem = download_problem(location, client.graph_base)
        if problem:
            err = GraphForeignLink(
                f"the report download link to {display_host(location)} is not followed: {problem}",
                status=first.status_code, path=spec.path,
            )
            if getattr(client, "metrics", None) is not None:
                client.metrics.error(client.tenant.name, spec.name, err.kind)
            raise err
        response = client.request(
            "GET", location, auth=False, expect_json=False, source=spec.name, throttle_class="default",
            max_bytes=MAX_REPORT_CSV_BYTES,
        )
    text = response.content.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    # One page: the report is one download, and a resumable link to "the rest" does not exist.
    rows = [{k: v for k, v in row.items() if k is not None} for row in reader]
    for row in rows:
        row[ROW_ID_FIELD] = row_id(row)
    yield CsvPage(rows, header_ok=set(REQUIRED_COLUMNS) <= set(reader.fieldnames or ()))
