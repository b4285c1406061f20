"""Consistent scrubbing for one capture: the same input gives the same placeholder everywhere.

Placeholders are HMAC-SHA256 of the original under a key made for this capture and never
written anywhere, so joins survive (a user's id in a sign-in, in the users delta and in a
nextLink are replaced alike) while the originals cannot be recovered or guessed from a
cassette.  Identifiers keep their shape (a GUID stays a GUID, an IP an address of the
documentation and benchmark ranges), so the collectors replay the cassettes unchanged.
Every replacement is counted per field path and category for ``scrub-report.json``.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import ipaddress
import json
import re
import secrets
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from . import rules as R

__all__ = ["Origins", "Scrubber"]

# The login service's paths: /{tenant}/oauth2/..., /{tenant}/v2.0 (issuer), OpenID metadata.
_LOGIN_PATH = re.compile(r"^/[^/]+/(?:oauth2|v2\.0|discovery|\.well-known)(?:/|$)|^/(?:common|organizations)/")
# A name is also replaced wherever else it appears only when it cannot be an ordinary word:
# at least 5 characters with a space, digit or separator ("Megan Wei", "DESKTOP-42", a phone),
# so a group called "Security" does not rewrite every "security" in the capture.
_KNOWN_MIN = 5
_KNOWN_SHAPE = re.compile(r"[\s\d._-]")


@dataclass(frozen=True)
class Origins:
    """Where the capture's requests went and the cloud's own hosts they are written as."""

    graph_from: str
    login_from: str
    graph_to: str
    login_to: str
    public_hosts: frozenset[str] = frozenset()

    def kind(self, origin: str, path: str) -> str:
        """``graph`` (an API path), ``login``, ``opaque`` (a pre-authenticated link) or ``foreign``."""
        if origin == self.graph_from and path.startswith(("/v1.0/", "/beta/")):
            return "graph"
        if origin == self.login_from and (origin != self.graph_from or _LOGIN_PATH.match(path)):
            return "login"
        if origin == self.graph_from or (urlsplit(origin).hostname or "") in self.public_hosts:
            return "opaque"
        return "foreign"

    def owns(self, value: str) -> bool:
        low = value.lower()
        return low.startswith(self.graph_from + "/") or low.startswith(self.login_from + "/")


class Scrubber:
    """Replaces personal data, identifiers and secrets; counts what it replaced where."""

    def __init__(self, origins: Origins, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.origins = origins
        self._memo: dict[tuple[str, str], str] = {}
        self._ipv4: dict[str, str] = {}  # placeholder -> normalised original (no collisions)
        self._known: dict[str, str] = {}  # casefolded name -> its placeholder
        self._known_re: re.Pattern[str] | None = None
        self.learning = False
        self.scope = "-"
        self.counts: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))

    # --- placeholders ---------------------------------------------------------------------
    def _count(self, path: str, category: str) -> None:
        if not self.learning:
            self.counts[self.scope][path][category] += 1

    def placeholder(self, category: str, original: str) -> str:
        """The placeholder of ``original`` in ``category`` (the same for the whole capture)."""
        norm = original if category == "token" else original.strip().casefold()
        found = self._memo.get((category, norm))
        if found is not None:
            return found
        digest = hmac.new(self._key, f"{category}\0{norm}".encode(), hashlib.sha256).digest()
        value = self._make(category, digest, norm)
        self._memo[(category, norm)] = value
        if category in ("name", "phone", "serial") and len(norm) >= _KNOWN_MIN and _KNOWN_SHAPE.search(norm):
            self._known.setdefault(norm, value)
        return value

    def _make(self, category: str, d: bytes, norm: str) -> str:
        h = d.hex()
        if category == "guid":
            return str(uuid.UUID(bytes=d[:16]))
        if category == "email":
            return f"user-{h[:10]}@example.invalid"
        if category == "domain":
            return f"tenant-{h[:10]}.onmicrosoft.invalid"
        if category == "ipv4":
            n = int.from_bytes(d[:4], "big") % 131072
            while True:  # 198.18.0.0/15 (RFC 2544), without collisions
                ip = f"198.{18 + n // 65536}.{(n // 256) % 256}.{n % 256}"
                if n % 256 not in (0, 255) and self._ipv4.setdefault(ip, norm) == norm:
                    return ip
                n = (n + 1) % 131072
        if category == "ipv6":
            return "2001:db8:" + ":".join(h[i : i + 4] for i in range(0, 24, 4))
        if category == "mac":
            return "02:" + ":".join(f"{b:02x}" for b in d[:5])
        if category == "sid":
            parts = [str(int.from_bytes(d[i : i + 4], "big")) for i in (0, 4, 8)]
            return "S-1-5-21-" + "-".join(parts) + f"-{1000 + int.from_bytes(d[12:14], 'big')}"
        if category == "token":
            return f"captured-{h[:16]}"
        return f"{category}-{h[:10]}"

    def replace(self, category: str, original: str, path: str) -> str:
        self._count(path, category)
        return self.placeholder(category, original)

    def freeze_known(self) -> None:
        """After the learning pass: every name seen is replaced wherever else it appears."""
        self.learning = False
        names = sorted(self._known, key=len, reverse=True)
        if names:
            alt = "|".join(re.escape(n) for n in names)
            self._known_re = re.compile(rf"(?<![\w.@-])(?:{alt})(?![\w.@-])", re.IGNORECASE)

    # --- strings ------------------------------------------------------------------------------
    def patterns(self, s: str, path: str, *, known: bool = True) -> str:
        """Identifiers anywhere in ``s``: mail/UPN, tenant domain, GUID, SID, MAC, IPs, and
        (``known``) the names replaced elsewhere in the capture."""
        if not s:
            return s

        def sub(category: str) -> Any:
            return lambda m: self.replace(category, m.group(0), path)

        s = R.EMAIL.sub(lambda m: m.group(0) if m.group(0).lower().endswith(".invalid") else self.replace("email", m.group(0), path), s)
        s = R.TENANT_DOMAIN.sub(sub("domain"), s)
        s = R.GUID.sub(lambda m: m.group(0) if m.group(0).lower() in R.PUBLIC_GUIDS else self.replace("guid", m.group(0), path), s)
        s = R.HEX32.sub(lambda m: self._hex32(m.group(0), path), s)
        s = R.SID.sub(sub("sid"), s)
        s = R.MAC.sub(sub("mac"), s)
        s = R.IPV4.sub(lambda m: m.group(0) if m.group(0).startswith(("0.", "127.")) else self.replace("ipv4", m.group(0), path), s)
        s = R.IPV6_CANDIDATE.sub(lambda m: self._ipv6(m.group(0), path), s)
        if known and self._known_re is not None:
            s = self._known_re.sub(lambda m: self._known_hit(m.group(0), path), s)
        return s

    def _hex32(self, text: str, path: str) -> str:
        dashed = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
        return self.replace("guid", dashed, path).replace("-", "")

    def _ipv6(self, text: str, path: str) -> str:
        try:
            addr = ipaddress.IPv6Address(text)
        except ValueError:
            return text
        return text if addr.is_loopback or addr.is_unspecified else self.replace("ipv6", text, path)

    def _known_hit(self, text: str, path: str) -> str:
        self._count(path, "name")
        return self._known[text.casefold()]

    def text(self, value: str, path: str) -> str:
        """Free text, replaced whole; a value that is one identifier (a UPN, a GUID, an address)
        gets that identifier's placeholder instead, so it still joins."""
        bare = value.strip()
        if R.EMAIL.fullmatch(bare) or R.GUID.fullmatch(bare) or R.IPV4.fullmatch(bare) or R.TENANT_DOMAIN.fullmatch(bare):
            return self.patterns(value, path, known=False)
        return self.replace("text", value, path)

    # --- URLs -----------------------------------------------------------------------------------
    def url(self, url: str, path: str) -> str:
        """A Graph or login URL written on the cloud's own host with its identifiers replaced;
        a pre-authenticated link (a report download) becomes an opaque placeholder path."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        kind = self.origins.kind(origin, parts.path)
        if kind in ("opaque", "foreign"):
            if kind == "foreign":
                origin = f"https://host-{self.placeholder('token', origin)[9:21]}.invalid"
            elif origin == self.origins.graph_from:
                origin = self.origins.graph_to
            return f"{origin}/_captured/{self.replace('token', url, path + ':url')[9:]}"
        base = self.origins.graph_to if kind == "graph" else self.origins.login_to
        segments = [quote(self.patterns(unquote(seg), path + ":path", known=False), safe="()'=,:@$!*;&+~")
                    for seg in parts.path.split("/")]
        pairs = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name.lower() in R.CONTINUATION_PARAMS:
                value = self.replace("token", value, f"{path}:query.{name}")
            else:
                value = self.patterns(value, f"{path}:query.{name}", known=False)
            pairs.append((name, value))
        query = urlencode(pairs, quote_via=quote, safe="$'(),:/")
        split = urlsplit(base)
        fragment = self.patterns(parts.fragment, path, known=False)
        return urlunsplit((split.scheme, split.netloc, "/".join(segments), query, fragment))

    # --- JSON -----------------------------------------------------------------------------------
    def json(self, value: Any, path: str = "", key: str = "", parent: str = "", text: bool = False) -> Any:
        """``value`` with every personal field replaced (see ``rules``)."""
        low = key.lower()
        if isinstance(value, dict):
            inner = text or low in R.TEXT_CONTAINERS
            return {k: self.json(v, f"{path}.{k}" if path else k, k, low, inner) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v, f"{path}[]", key, parent, text or low in R.TEXT_CONTAINERS) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if low in R.GEO_KEYS:
                self._count(path, "geo")
                return 0.0
            return value
        if isinstance(value, str):
            return self._json_string(value, path, low, parent, text)
        return value

    def _json_string(self, value: str, path: str, low: str, parent: str, text: bool) -> str:
        if not value or low in R.KEEP_KEYS or (parent, low) in R.KEEP_PAIRS:
            return value
        if low.startswith("@odata.") or low.endswith(("@odata.context", "@odata.nextlink", "@odata.deltalink")) or self.origins.owns(value):
            return self.url(value, path)
        if low in R.JSON_TEXT_KEYS and value.lstrip()[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                return self.text(value, path)
            return json.dumps(self.json(parsed, path + "(json)"), ensure_ascii=False, separators=(",", ":"))
        if text or low in R.TEXT_KEYS or low in R.JSON_TEXT_KEYS:
            return self.text(value, path)
        if low in R.PERSON_KEYS:
            return self.patterns(value, path) if R.EMAIL.search(value) else self.replace("name", value, path)
        if low in R.PHONE_KEYS:
            return self.replace("phone", value, path)
        if low in R.SERIAL_KEYS:
            return self.replace("serial", value, path)
        if low in R.MAC_KEYS:
            return self.replace("mac" if R.MAC.fullmatch(value) else "serial", value, path)
        if low in R.NAME_KEYS or low.endswith(R.NAME_SUFFIXES):
            return self.patterns(value, path) if R.EMAIL.fullmatch(value) else self.replace("name", value, path)
        return self.patterns(value, path)

    # --- CSV --------------------------------------------------------------------------------------
    def csv(self, text: str, path: str) -> str:
        """A usage-report CSV: person columns replaced, every other cell pattern-scrubbed."""
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return text
        columns = [h.lstrip("\ufeff").strip().lower() for h in rows[0]]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n")
        writer.writerow(rows[0])
        for row in rows[1:]:
            cells = []
            for i, cell in enumerate(row):
                column = columns[i] if i < len(columns) else ""
                where = f"{path}:csv.{rows[0][i].lstrip(chr(0xFEFF)) if i < len(rows[0]) else i}"
                kind = R.CSV_COLUMNS.get(column)
                if cell and kind == "name" or (cell and kind == "person" and not R.EMAIL.search(cell)):
                    cells.append(self.replace("name", cell, where))
                else:
                    cells.append(self.patterns(cell, where))
            writer.writerow(cells)
        return out.getvalue()

    # --- report -----------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """What was replaced, per cassette, field path and category (never an original)."""
        per: dict[str, Any] = {}
        totals: Counter[str] = Counter()
        for scope, paths in sorted(self.counts.items()):
            per[scope] = {p: dict(sorted(c.items())) for p, c in sorted(paths.items())}
            for c in paths.values():
                totals.update(c)
        return {"replaced": per, "totals": dict(sorted(totals.items()))}
