"""The server as a process: start-up line, flags, refusals, clean shutdown, launcher errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from faults.errors import FaultError
from faults.toxiproxy.client import ToxiproxyClient
from faults.toxiproxy.errors import (
    ApiError,
    SpawnError,
    ToxiproxyError,
    ToxiproxyFault,
    UsageError,
)
from faults.toxiproxy.process import resolve_toxiproxy, spawn_server, stop_server
from faults.toxiproxy.server import main

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faults.toxiproxy", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_version_flag_go_style() -> None:
    result = _run("-version")
    assert result.returncode == 0 and "version 2.12.0" in result.stdout


def test_non_loopback_host_is_refused() -> None:
    result = _run("-host", "8.8.8.8", "-port", "0")
    assert result.returncode == 2 and "--allow-non-loopback" in result.stderr
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2


def test_config_file_and_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "cfg", "listen": "127.0.0.1:0", "upstream": "x:1"}]))
    proc, url = spawn_server(
        port=0, seed=3, extra_args=["-config", str(config)], log_path=tmp_path / "log"
    )
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert list(ToxiproxyClient(url).proxies()) == ["cfg"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        stop_server(proc)


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('[{"listen":"127.0.0.1:0"}]')
    with pytest.raises(SpawnError, match="did not announce its port"):
        spawn_server(extra_args=["-config", str(config)], deadline=10)
    result = _run("-port", "0", "-config", str(config))
    assert result.returncode == 2 and "missing required field: name at proxy 1" in result.stderr


def test_spawn_reports_what_it_printed(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match="exit code 2") as info:
        spawn_server(host="8.8.8.8", log_path=tmp_path / "log", deadline=10)
    assert str(tmp_path / "log") in str(info.value)
    assert "--allow-non-loopback" in (tmp_path / "log").read_text()


def test_client_errors_and_resolve(monkeypatch: pytest.MonkeyPatch, toxiproxy_url: str) -> None:
    client = ToxiproxyClient(toxiproxy_url, timeout=2)
    with pytest.raises(ToxiproxyError) as info:
        client.proxy("does-not-exist")
    assert info.value.status == 404 and info.value.message == "proxy not found"
    with pytest.raises(ToxiproxyError) as info:
        ToxiproxyClient("127.0.0.1:1", timeout=1).version()
    assert info.value.status == 0 and "unreachable" in str(info.value)
    with pytest.raises(ValueError, match="timeout"):
        ToxiproxyClient(toxiproxy_url, timeout=0)
    monkeypatch.setenv("TOXIPROXY_URL", "127.0.0.1:8474")
    assert resolve_toxiproxy() == "http://127.0.0.1:8474"
    monkeypatch.delenv("TOXIPROXY_URL")
    assert resolve_toxiproxy() is None


def test_client_round_trip(toxiproxy_url: str) -> None:
    client = ToxiproxyClient(toxiproxy_url)
    assert client.version().startswith("2.")
    proxy = client.create_proxy("rt_proxy", "127.0.0.1:0", "127.0.0.1:9")
    try:
        toxic = client.add_toxic("rt_proxy", type="latency", attributes={"latency": 5})
        assert toxic.name == "latency_downstream" and toxic.attributes["latency"] == 5
        updated = client.update_toxic("rt_proxy", toxic.name, toxicity=0.5)
        assert updated.toxicity == 0.5 and updated.attributes["latency"] == 5
        assert client.toxics("rt_proxy") == [updated]
        moved = client.update_proxy("rt_proxy", upstream="127.0.0.1:10")
        assert moved.upstream == "127.0.0.1:10" and moved.listen == proxy.listen
        (again,) = client.populate(
            [{"name": "rt_proxy", "listen": proxy.listen, "upstream": "127.0.0.1:10"}]
        )
        assert again.toxics == (updated,)
        client.remove_toxic("rt_proxy", toxic.name)
        client.reset()
    finally:
        client.delete_proxy("rt_proxy")


def _dead(pid: int) -> bool:
    """Gone, or a zombie (whoever adopted it may reap it later)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_server_dies_with_its_launcher(tmp_path: Path) -> None:
    # The launcher is a process of its own so that it can be SIGKILLed (no cleanup runs):
    # only the parent-death signal set by spawn_server can then take the server down.
    code = (
        "import sys, time\n"
        "from faults.toxiproxy.process import spawn_server\n"
        "proc, url = spawn_server(log_path=sys.argv[1])\n"
        "print(proc.pid, url, flush=True)\n"
        "time.sleep(60)\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "server.log")],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,
    )
    server_pid = 0
    try:
        assert launcher.stdout is not None
        pid_text, url = launcher.stdout.readline().decode().split()
        server_pid = int(pid_text)
        assert ToxiproxyClient(url, timeout=5).version().startswith("2.")
        launcher.kill()
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while not _dead(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _dead(server_pid), "the server outlived its SIGKILLed launcher"
    finally:
        for pid in (launcher.pid, server_pid):
            if pid and not _dead(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.wait(10)
        if launcher.stdout is not None:
            launcher.stdout.close()


def test_spawn_error_for_a_missing_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(SpawnError, match=r"cannot start toxiproxy server .*nonexistent"):
        spawn_server(deadline=5)


def test_errors_share_the_faults_root() -> None:
    api_error = ApiError(404, "proxy not found")
    assert isinstance(api_error, ToxiproxyFault) and isinstance(api_error, FaultError)
    assert str(api_error) == "HTTP 404: proxy not found"
    assert api_error.args == (404, "proxy not found") and api_error.message == "proxy not found"
    client_error = ToxiproxyError(0, "refused", url="http://127.0.0.1:1")
    assert str(client_error) == "toxiproxy unreachable from http://127.0.0.1:1: refused"
    assert str(ToxiproxyError(409, "proxy already exists")) == (
        "toxiproxy error 409: proxy already exists"
    )
    for error in (UsageError("-config x: cannot read"), SpawnError("no start-up line")):
        assert isinstance(error, FaultError) and str(error) == error.message
