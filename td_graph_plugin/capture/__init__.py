"""``td-graph capture``: record a real tenant's answers as scrubbed VCR cassettes.

``runner`` drives the real client and collectors (discovery, then the first N pages of each
source) while ``recorder`` files every exchange at the transport; ``scrub`` and ``rules`` replace
personal data and identifiers consistently; ``cassette`` writes vcrpy's YAML, which the test
suite replays from ``cassettes/captured/`` (tests/test_captured_cassettes.py).
"""

from __future__ import annotations

from .runner import DEFAULT_PAGES, CaptureResult, SourceCapture, capture, select_sources

__all__ = ["capture", "select_sources", "CaptureResult", "SourceCapture", "DEFAULT_PAGES"]
