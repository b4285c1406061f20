"""Logging to stderr in UTC, as text or one JSON object per line, and a last line of defence
that masks any secret that slips in: the whole formatted output is redacted, exception text and
stack included, because a secret in a traceback is as leaked as one in a message."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import IO, Any, Iterable

__all__ = [
    "setup_logging",
    "RedactingFilter",
    "RedactingFormatter",
    "JsonFormatter",
    "register_secrets",
    "redact",
    "LOG_FORMATS",
    "LOG_LEVELS",
]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_FORM = re.compile(r"((?:client_secret|client_assertion|access_token)[\"']?\s*[=:]\s*[\"']?)[^&\"'\s,}]+")
# "tenant/source: ..." is how the engine and collectors name the run a message is about.
_ABOUT = re.compile(r"^%s/%s\b")
_secrets: set[str] = set()
_format = "text"


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line (client secrets, passphrases)."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    """``text`` with bearer tokens, form secrets and every registered secret masked."""
    clean = _BEARER.sub(r"\1***", text)
    clean = _FORM.sub(r"\1***", clean)
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: no partial leftovers
        if secret in clean:
            clean = clean.replace(secret, "***")
    return clean


class RedactingFilter(logging.Filter):
    """Masks secrets in the record itself (message, exception text, stack), so every handler
    the record reaches, not only td-graph's own (syslog-ng's internal log too), sees it clean."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _utc_iso(created: float) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-26T10:02:03.123Z`` (whole milliseconds first,
    so 10:02:03.123 is not printed .122 by float rounding)."""
    seconds, millis = divmod(round(created * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class RedactingFormatter(logging.Formatter):
    """``2026-11-26T10:02:03.123Z INFO logger: message``: UTC whatever the host's zone, and
    redacted after formatting, so nothing the formatter adds (a traceback) escapes the mask."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc_iso(record.created)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (RFC 3339 UTC, ms), ``level``, ``logger``, ``message``,
    ``tenant``/``source`` when the message is about one run, ``exception``/``stack`` when given.
    Each field is redacted whole once formatted, before encoding: JSON escaping could hide a
    secret from the mask, and masking the encoded line could cut an escape in half."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "ts": _utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(message),
        }
        entry.update(_about(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def _about(record: logging.LogRecord) -> dict[str, str]:
    """The tenant and source a record is about: ``extra={"tenant": ..., "source": ...}``, or
    the engine's ``"%s/%s: ..."`` convention (its first two arguments)."""
    out: dict[str, str] = {}
    for key in ("tenant", "source"):
        value = getattr(record, key, None)
        if isinstance(value, str) and value:
            out[key] = value
    if out or not isinstance(record.msg, str) or not _ABOUT.match(record.msg):
        return out
    args = record.args
    if isinstance(args, tuple) and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        out["tenant"], out["source"] = args[0], args[1]
    return out


def setup_logging(level: str = "info", stream: IO[str] | None = None, fmt: str | None = None) -> None:
    """One td-graph handler on the root logger (replacing an earlier one).

    ``fmt`` (text | json) is remembered: commands call this again once their config's
    ``logging.level`` is known, and the ``--log-format`` chosen on the command line must stay.
    """
    global _format
    if fmt is not None:
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")
        _format = fmt
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if _format == "json" else RedactingFormatter())
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
