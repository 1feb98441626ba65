"""ecg_core.core: the one atomic writer, the frozen-config base, hashing and formatting."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

import numpy as np
import pytest

from ecg_core.core import atomic, formatting, hashing
from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError


def test_atomic_write_is_0644_fsynced_and_leaves_no_temp(tmp_path, monkeypatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    target = tmp_path / "sub" / "a.json"
    atomic.atomic_write_json(target, {"x": float("nan"), "y": np.int64(3), "z": np.arange(2)})
    assert target.read_text().replace(" ", "").replace("\n", "") == '{"x":null,"y":3,"z":[0,1]}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert synced, "the data was not fsynced before the rename"
    atomic.atomic_write_to_path(tmp_path / "m.bin", lambda p: p.write_bytes(b"model"), suffix=".keras")
    assert (tmp_path / "m.bin").read_bytes() == b"model"
    assert stat.S_IMODE((tmp_path / "m.bin").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "m.bin", "sub"]


@pytest.mark.parametrize("writer", ["bytes", "path"])
def test_a_failed_write_keeps_the_old_file_and_says_why(tmp_path, monkeypatch, writer) -> None:
    target = tmp_path / "run.json"
    target.write_text("old")

    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(atomic.FileWriteError, match="read-only") as err:
        if writer == "bytes":
            atomic.atomic_write_bytes(target, b"new")
        else:
            atomic.atomic_write_to_path(target, lambda p: p.write_bytes(b"new"))
    assert isinstance(err.value, ConfigError)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind


def test_a_file_in_the_way_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(atomic.FileWriteError, match="is a file, not a folder"):
        atomic.atomic_write_text(tmp_path / "blocker" / "a.txt", "y")


@dataclass(frozen=True)
class _Cfg(FrozenConfig):
    a: int = 1
    b: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class _Short(_Cfg):
    HASH_LENGTH = 8


def test_frozen_config_round_trip_hash_and_unknown_keys() -> None:
    c = _Cfg(a=2)
    assert c.to_dict() == {"a": 2, "b": [1, 2]}
    assert _Cfg.from_dict({"a": 2}) == c
    assert c.config_hash() == hashing.json_hash({"a": 2, "b": [1, 2]})
    assert len(_Short().config_hash()) == 8 and len(c.config_hash()) == 40
    assert _Cfg(a=3).config_hash() != c.config_hash()
    with pytest.raises(ConfigError, match="unknown _Cfg keys \\['zz'\\]"):
        _Cfg.from_dict({"a": 1, "zz": 0})
    with pytest.raises(ConfigError, match="expected a mapping"):
        _Cfg.from_dict([1])  # type: ignore[arg-type]


def test_formatting() -> None:
    assert formatting.fmt_num(float("nan")) == "n/a" and formatting.fmt_num(0.81234) == "0.812"
    assert formatting.fmt_ci((0.7, 0.9)) == "0.700-0.900" and formatting.fmt_ci(None) == "n/a"
    assert formatting.fmt_value_ci(0.8, (0.7, 0.9)) == "0.800 (95 % CI 0.700-0.900)"
    assert formatting.fmt_value_ci(0.8, None) == "0.800" and formatting.fmt_value_ci(None, (0, 1)) == "n/a"
    assert formatting.json_safe({"a": [np.float32(np.inf), np.bool_(True)]}) == {"a": [None, True]}
    assert hashing.file_hash(b"abc").startswith("ba7816bf")
