"""Issue 18.1: the app is local by default. ``make run`` (the README's command) listens on the loopback address only,
not on every interface; ``HOST=0.0.0.0`` is the explicit way to serve the network; a hand-made ``streamlit run`` reads
the same localhost address from ``.streamlit/config.toml``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hex_addr(hexaddr: str) -> str:
    """An address of /proc/net/tcp{,6} (little-endian hex words) as text."""
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket in state LISTEN on ``port`` (IPv4 and IPv6), from /proc/net."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if int(hexport, 16) == port and fields[3] == "0A":  # 0A = TCP_LISTEN
                out.add(_hex_addr(addr))
    return out


def test_proc_parser_sees_a_wildcard_listener():
    """The parser itself: a socket bound to every interface reads 0.0.0.0 (so the check below can fail)."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system")
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        assert listening_addresses(s.getsockname()[1]) == {"0.0.0.0"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert listening_addresses(s.getsockname()[1]) == {"127.0.0.1"}


def test_make_run_listens_on_loopback_only(tmp_path, monkeypatch):
    from e2e.helpers import serve  # the browser tests' way of starting the README's command (`make run PORT=...`)

    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system")
    monkeypatch.delenv("HOST", raising=False)  # the default, as a user types it: `make run`
    env = {"ECG_INSIGHT_HOME": str(tmp_path / "home"), "ECG_INSIGHT_MODELS": str(tmp_path / "models"),
           "ECG_INSIGHT_WARMUP": "0"}
    log = tmp_path / "serve.log"
    with serve(env, log, start_s=120) as url:
        port = int(url.rsplit(":", 1)[1])
        assert listening_addresses(port) == {"127.0.0.1"}, (listening_addresses(port), log.read_text()[-2000:])
        assert "Network URL" not in log.read_text()  # Streamlit prints it only when it serves the network


def test_host_variable_is_the_only_way_to_serve_the_network():
    """``make run`` passes HOST (default 127.0.0.1) to ``--server.address``; HOST=0.0.0.0 changes it."""
    env = {k: v for k, v in os.environ.items() if k != "HOST"}
    dry = subprocess.run(["make", "-n", "run"], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in dry.stdout.splitlines() if "streamlit run" in x)
    assert "--server.address 127.0.0.1" in line
    dry = subprocess.run(["make", "-n", "run", "HOST=0.0.0.0"], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True)
    assert "--server.address 0.0.0.0" in next(x for x in dry.stdout.splitlines() if "streamlit run" in x)


def test_config_binds_localhost_for_a_hand_made_streamlit_run():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["maxUploadSize"] == 200  # the upload size limit stays


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
