"""A tiny Graph client for the simulator's own tests: bearer header, whole nextLinks."""

from __future__ import annotations

import requests

from td_graph_plugin.simulator import GraphSimulator, SimTenant

SCOPE = "https://graph.microsoft.com/.default"


def session(sim: GraphSimulator) -> requests.Session:
    s = requests.Session()
    s.verify = sim.ca_path
    s.trust_env = False  # the environment's CA bundle must not replace the simulator's
    return s


def token_for(sim: GraphSimulator, t: SimTenant, s: requests.Session | None = None) -> str:
    s = s or session(sim)
    r = s.post(f"{sim.base_url}/{t.tenant_id}/oauth2/v2.0/token",
               data={"grant_type": "client_credentials", "client_id": t.client_id,
                     "client_secret": t.client_secret, "scope": SCOPE})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


class Graph:
    def __init__(self, sim: GraphSimulator, t: SimTenant):
        self.sim = sim
        self.s = session(sim)
        self.token = token_for(sim, t, self.s)

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else self.sim.base_url + path

    def get(self, path: str, headers: dict | None = None, **kw) -> requests.Response:
        return self.send("GET", path, headers=headers, **kw)

    def send(self, method: str, path: str, **kw) -> requests.Response:
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(kw.pop("headers", None) or {})
        return self.s.request(method, self.url(path), headers=h, **kw)

    def all_pages(self, path: str, headers: dict | None = None) -> tuple[list[dict], int]:
        url, items, pages = path, [], 0
        while url:
            r = self.get(url, headers)
            assert r.status_code == 200, r.text
            body = r.json()
            items.extend(body["value"])
            pages += 1
            url = body.get("@odata.nextLink")
        return items, pages

    def delta(self, url: str) -> tuple[list[dict], str, int]:
        items, pages = [], 0
        while True:
            r = self.get(url)
            assert r.status_code == 200, r.text
            body = r.json()
            items.extend(body["value"])
            pages += 1
            if "@odata.deltaLink" in body:
                return items, body["@odata.deltaLink"], pages
            url = body["@odata.nextLink"]
