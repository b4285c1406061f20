"""Issue 12 (collector side): ``event_time`` is never null; snapshot sweeps need a plausible read."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import orjson
import pytest
import yaml

from td_graph_plugin.cli.demo import demo_config
from td_graph_plugin.simulator import GraphSimulator

pytestmark = pytest.mark.timeout(180)

# RFC 3339 in UTC, written by hand (not the product's parser): date, 'T', time, optional
# fraction, 'Z' or +00:00.
RFC3339_UTC = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|\+00:00)$")


def test_run_once_every_record_has_an_rfc3339_utc_event_time(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        out = tmp_path / "records.ndjson"
        cfg = demo_config(sim, tenant, str(tmp_path / "state.db"), output={"type": "file", "path": str(out)})
        path = tmp_path / "td-graph.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret)
        proc = subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", str(path), "--once"],
                              capture_output=True, env=env, timeout=170)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    records = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
    assert records
    bad = [(r["source"], r["id"], r["event_time"]) for r in records
           if not isinstance(r.get("event_time"), str) or not RFC3339_UTC.match(r["event_time"])]
    assert not bad, bad[:10]


class _CsvClient:
    """Answers the report request with ``body`` directly (no redirect)."""

    def __init__(self, body: str) -> None:
        self.body = body.encode("utf-8")

    def request(self, method, url, **kw):
        from types import SimpleNamespace

        return SimpleNamespace(status_code=200, headers={}, url=url, content=self.body)


@pytest.mark.parametrize("header, ok", [
    ("Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date", True),
    ("Report Refresh Date,UPN,Display Name,Is Deleted,Deleted Date", False),  # a renamed column
    ("Refresh,User Principal Name,Is Deleted,Deleted Date", False),
])
def test_the_report_pager_marks_a_page_whose_csv_header_changed(header, ok):
    from types import SimpleNamespace

    from td_graph_plugin.sources.reports import office365_csv_pager

    spec = SimpleNamespace(name="reports.office365_active_users", throttle_class="usage_reports", path="/r")
    body = header + "\n" + ",".join(["2026-11-25", "a@contoso.test", "A", "False", ""][: header.count(",") + 1]) + "\n"
    pages = list(office365_csv_pager(_CsvClient(body), spec, "https://graph.test/r", None))
    assert [p.header_ok for p in pages] == [ok]
