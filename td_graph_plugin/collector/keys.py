"""The two identities the collectors store: a window record's dedup key and an inventory
object's content hash.  One owner, used by the collectors and by crash recovery alike, so a
record adopted after a crash is keyed exactly as its collector would have keyed it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .encoding import encode_json

__all__ = ["window_key", "content_hash"]

_SKIP_KEYS = ("@odata.etag",)


def window_key(obj_id: str, version: Any) -> str:
    """``id|version`` when the source has a version field (an updated alert is new), else ``id``."""
    return f"{obj_id}|{version}" if version is not None else obj_id


def content_hash(item: dict[str, Any]) -> str:
    """Stable over key order; ignores annotations that change without the object changing."""
    if any(k in item for k in _SKIP_KEYS):
        item = {k: v for k, v in item.items() if k not in _SKIP_KEYS}
    return hashlib.blake2b(encode_json(item, sort_keys=True), digest_size=16).hexdigest()
