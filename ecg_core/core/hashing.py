"""Content hashes used as identities: of file bytes (cache keys, duplicate detection) and of JSON-able values."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def file_hash(data: bytes) -> str:
    """SHA-256 hex digest of a file's bytes (cache keys, exact-duplicate detection)."""
    return hashlib.sha256(data).hexdigest()


def json_hash(value: Any, *, length: int | None = None) -> str:
    """sha1 of the sorted JSON of ``value`` (cut to ``length`` hex digits)."""
    digest = hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:length] if length else digest
