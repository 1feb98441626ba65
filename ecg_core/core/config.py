"""One base for the frozen configuration dataclasses that travel with models and datasets.

``to_dict`` gives JSON-ready values (tuples become lists), ``from_dict`` refuses unknown keys with the list of known
ones, and ``config_hash`` is the sha1 of the sorted JSON (cut to ``HASH_LENGTH`` hex digits when a subclass sets it):
the key of caches, datasets and runs. Subclasses with nested configs override ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from typing import Any, ClassVar, Self

from ecg_core.core.errors import ConfigError


class FrozenConfig:
    """Mixin for ``@dataclass(frozen=True)`` configs."""

    HASH_LENGTH: ClassVar[int | None] = None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # type: ignore[call-overload]

    @classmethod
    def known_fields(cls) -> set[str]:
        return {f.name for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def check_keys(cls, d: dict[str, Any]) -> None:
        known = cls.known_fields()
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} keys {unknown} (unknown field(s); the file was probably written by another "
                f"version of ecg_core); known: {sorted(known)}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Build from :meth:`to_dict` output (``run.json``, ``spectral_config.json``...); unknown keys are refused."""
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping of options, received {type(d).__name__}")
        cls.check_keys(d)
        return cls(**d)

    def config_hash(self) -> str:
        """Stable hash of the options (sha1 of the sorted JSON)."""
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
        return digest[: self.HASH_LENGTH] if self.HASH_LENGTH else digest
