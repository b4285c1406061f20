"""Logging to stderr with levels, and a last-line filter that masks any secret that slips in."""

from __future__ import annotations

import logging
import re
import sys
from typing import Iterable

__all__ = ["setup_logging", "RedactingFilter", "register_secrets"]

_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_FORM = re.compile(r"((?:client_secret|client_assertion|access_token)[\"']?\s*[=:]\s*[\"']?)[^&\"'\s,}]+")
_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line (client secrets, passphrases)."""
    _secrets.update(v for v in values if v and len(v) >= 4)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = _BEARER.sub(r"\1***", message)
        clean = _FORM.sub(r"\1***", clean)
        for secret in _secrets:
            if secret in clean:
                clean = clean.replace(secret, "***")
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup_logging(level: str = "info", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_td_graph", False):
            root.removeHandler(h)
    handler._td_graph = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # MSAL and urllib3 are chatty at debug and MSAL may log request details; keep them quiet.
    for noisy in ("msal", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
