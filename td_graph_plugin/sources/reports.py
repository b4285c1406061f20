"""Microsoft 365 usage reports: a 302 to a pre-authenticated CSV, read without our token.

The report function answers ``302 Found`` with a short-lived download URL that already carries
its own authorisation; sending our Bearer token there would leak it to another host, so the
download goes out with ``auth=False``.  The CSV becomes one record per user row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import GraphResponseError

__all__ = ["office365_csv_pager", "CsvPage"]

@dataclass
class CsvPage:
    items: list[dict[str, Any]]
    next_link: str | None = None
    delta_link: str | None = None
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


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
        response = client.request(
            "GET", location, auth=False, expect_json=False, source=spec.name, throttle_class="default"
        )
    text = response.content.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    # One page: the report is one download, and a resumable link to "the rest" does not exist.
    yield CsvPage([{k: v for k, v in row.items() if k is not None} for row in reader])
