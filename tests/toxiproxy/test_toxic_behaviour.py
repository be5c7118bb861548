"""Toxic and connection behaviour through real sockets (echo servers on 127.0.0.1:0).

Timing checks are one-sided (at least the toxic's delay, generous upper bounds only
where a stall must have ended), so a noisy machine cannot fail them.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from faults.toxiproxy.client import Proxy, ToxiproxyClient
from tests.toxiproxy.conftest import connect, exchange, read_outcome


@pytest.fixture
def proxy(api: ToxiproxyClient, name: str, echo: str) -> Iterator[Proxy]:
    created = api.create_proxy(name, "127.0.0.1:0", echo)
    yield created
    api.delete_proxy(name)


def test_passthrough_and_large_transfer(proxy: Proxy) -> None:
    with connect(proxy.listen) as sock:
        payload = bytes(range(256)) * 4096  # 1 MiB
        got, _ = exchange(sock, payload, wait=10)
        assert got == payload


def test_latency_applies_to_live_connection_and_removal(api: ToxiproxyClient, proxy: Proxy) -> None:
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"hello")[0] == b"hello"
        api.add_toxic(proxy.name, type="latency", attributes={"latency": 100})
        got, took = exchange(sock, b"hello")
        assert got == b"hello" and took >= 0.1
        api.update_toxic(proxy.name, "latency_downstream", attributes={"latency": 200})
        got, took = exchange(sock, b"hello")
        assert got == b"hello" and took >= 0.2
        api.remove_toxic(proxy.name, "latency_downstream")
        assert exchange(sock, b"hello")[0] == b"hello"


def test_stacked_latency_adds_up(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="latency", name="a", attributes={"latency": 50})
    api.add_toxic(proxy.name, type="latency", name="b", attributes={"latency": 50})
    api.add_toxic(
        proxy.name, type="latency", name="c", stream="upstream", attributes={"latency": 50}
    )
    with connect(proxy.listen) as sock:
        got, took = exchange(sock, b"x")
        assert got == b"x" and took >= 0.15


def test_latency_is_measured_from_read_time(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="latency", attributes={"latency": 200})
    with connect(proxy.listen) as sock:
        start = time.monotonic()
        for _ in range(5):
            sock.sendall(b"ab")
            time.sleep(0.02)
        got = b""
        sock.settimeout(5)
        while len(got) < 10:
            got += sock.recv(100)
        # five chunks sent 20 ms apart: not 5 x 200 ms
        assert time.monotonic() - start < 0.9


def test_toxicity_zero_never_applies(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="timeout", toxicity=0.0, attributes={"timeout": 0})
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"hello")[0] == b"hello"
        # removing a timeout toxic closes its connections even where it rolled "no"
        api.remove_toxic(proxy.name, "timeout_downstream")
        assert read_outcome(sock, 2) == "eof"


def test_timeout_zero_holds_until_removed_then_closes(api: ToxiproxyClient, proxy: Proxy) -> None:
    with connect(proxy.listen) as sock:
        api.add_toxic(proxy.name, type="timeout", attributes={"timeout": 0})
        got, _ = exchange(sock, b"hello", wait=0.5)
        assert got == b""
        assert read_outcome(sock, 0.3) == "timeout"  # still open
        api.remove_toxic(proxy.name, "timeout_downstream")
        assert read_outcome(sock, 2) == "eof"
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"again")[0] == b"again"


def test_timeout_closes_after_its_delay(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="timeout", stream="upstream", attributes={"timeout": 300})
    with connect(proxy.listen) as sock:
        start = time.monotonic()
        assert read_outcome(sock, 5) == "eof"
        assert time.monotonic() - start >= 0.29


def test_reset_peer_resets_on_first_data(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="reset_peer", stream="upstream", attributes={"timeout": 100})
    with connect(proxy.listen) as sock:
        assert read_outcome(sock, 0.3) == "timeout"  # idle: never reset
        start = time.monotonic()
        sock.sendall(b"boom")
        assert read_outcome(sock, 5) == "reset"
        assert time.monotonic() - start >= 0.09


def test_limit_data_cuts_then_closes(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="limit_data", attributes={"bytes": 10})
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"123456")[0] == b"123456"
        got, _ = exchange(sock, b"abcdef")
        assert got == b"abcd"
        assert read_outcome(sock, 2) == "eof"
    with connect(proxy.listen) as sock:  # a new connection has a fresh budget
        assert exchange(sock, b"12345678")[0] == b"12345678"


def test_slow_close_delays_the_close(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="slow_close", attributes={"delay": 300})
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"bye")[0] == b"bye"
        start = time.monotonic()
        sock.shutdown(socket.SHUT_WR)  # the echo server then closes its side
        assert read_outcome(sock, 5) == "eof"
        assert time.monotonic() - start >= 0.29


def test_bandwidth_paces_and_zero_stalls(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="bandwidth", attributes={"rate": 100})
    with connect(proxy.listen) as sock:
        got, took = exchange(sock, b"z" * 50_000, wait=10)
        assert len(got) == 50_000 and took >= 0.45  # 50 kB at 100 KB/s (KB = 1000 B)
    api.update_toxic(proxy.name, "bandwidth_downstream", attributes={"rate": 0})
    with connect(proxy.listen) as sock:
        got, _ = exchange(sock, b"stalled", wait=0.5)
        assert got == b""
        api.remove_toxic(proxy.name, "bandwidth_downstream")
        sock.settimeout(5)
        assert sock.recv(100) == b"stalled"  # the stalled data comes out


def test_slicer_cuts_chunks(api: ToxiproxyClient, proxy: Proxy) -> None:
    attributes = {"average_size": 100, "size_variation": 0, "delay": 20000}
    api.add_toxic(proxy.name, type="slicer", attributes=attributes)
    with connect(proxy.listen) as sock:
        sock.sendall(b"s" * 1000)
        sizes: list[int] = []
        sock.settimeout(5)
        while sum(sizes) < 1000:
            sizes.append(len(sock.recv(4096)))
        assert len(sizes) >= 8 and max(sizes) <= 126


def test_slicer_default_attributes_do_not_crash(
    api: ToxiproxyClient, proxy: Proxy, embedded_only: None
) -> None:
    # toxiproxy-server 2.12 dies of a stack overflow here (PR #770); we pass data whole.
    api.add_toxic(proxy.name, type="slicer")
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"data")[0] == b"data"
    assert api.version()


def test_disable_closes_and_refuses_then_reenable(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="latency", attributes={"latency": 10})
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"hi")[0] == b"hi"
        off = api.update_proxy(proxy.name, enabled=False)
        assert not off.enabled and len(off.toxics) == 1  # toxics kept
        assert read_outcome(sock, 2) == "eof"
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.listen)
    on = api.update_proxy(proxy.name, enabled=True)
    assert on.listen == proxy.listen
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"back")[0] == b"back"


def test_upstream_change_closes_live_and_uses_new(
    api: ToxiproxyClient, proxy: Proxy, ack_server: str
) -> None:
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"hi")[0] == b"hi"
        moved = api.update_proxy(proxy.name, upstream=ack_server)
        assert moved.upstream == ack_server and moved.listen == proxy.listen
        assert read_outcome(sock, 2) == "eof"
    with connect(proxy.listen) as sock:
        sock.sendall(b"12345")
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        assert sock.recv(8) == (5).to_bytes(8, "big")


def test_upstream_refused_gives_eof(api: ToxiproxyClient, name: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening: refused
        created = api.create_proxy(name, "127.0.0.1:0", dead)
        try:
            with connect(created.listen) as sock:
                assert read_outcome(sock, 2) in ("eof", "reset")
        finally:
            api.delete_proxy(name)


def test_reset_clears_toxics_on_live_connection(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="latency", attributes={"latency": 300})
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"a")[1] >= 0.3
        api.reset()
        assert api.toxics(proxy.name) == []
        got, took = exchange(sock, b"b")
        assert got == b"b" and took < 0.3


def test_half_close_reply_is_delivered(
    api: ToxiproxyClient, name: str, ack_server: str, embedded_only: None
) -> None:
    # toxiproxy-server closes the whole pair on a half-close and loses the reply
    # (recorded 3 of 5 lost); we relay the half-close, so the reply always arrives.
    created = api.create_proxy(name, "127.0.0.1:0", ack_server)
    try:
        for _ in range(5):
            with connect(created.listen) as sock:
                sock.sendall(b"m" * (1 << 20))
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(10)
                reply = b""
                while len(reply) < 8 and (chunk := sock.recv(8)):
                    reply += chunk
                assert reply == (1 << 20).to_bytes(8, "big")
    finally:
        api.delete_proxy(name)


def test_toxicity_half_is_per_connection(api: ToxiproxyClient, proxy: Proxy) -> None:
    api.add_toxic(proxy.name, type="latency", toxicity=0.5, attributes={"latency": 150})
    outcomes = []
    for _ in range(16):
        with connect(proxy.listen) as sock:
            first = exchange(sock, b"q")[1] >= 0.15
            second = exchange(sock, b"q")[1] >= 0.15
            if first:
                assert second  # same decision for every message of a connection
            outcomes.append(first)
    assert 0 < sum(outcomes) < 16


def test_upstream_by_host_name(api: ToxiproxyClient, name: str, echo: str) -> None:
    # A name (not a literal address) is resolved before dialing.
    created = api.create_proxy(name, "127.0.0.1:0", "localhost:" + echo.rsplit(":", 1)[1])
    try:
        with connect(created.listen) as sock:
            assert exchange(sock, b"named")[0] == b"named"
    finally:
        api.delete_proxy(name)


def test_client_reset_drops_the_upstream_side(api: ToxiproxyClient, name: str) -> None:
    # An RST from the client (a read error in the proxy) must not leave the upstream
    # connection open: the proxy drops it too.
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        created = api.create_proxy(name, "127.0.0.1:0", f"127.0.0.1:{upstream.getsockname()[1]}")
        try:
            client = connect(created.listen)
            upstream.settimeout(5)
            accepted, _ = upstream.accept()
            with accepted:
                client.sendall(b"x")
                accepted.settimeout(5)
                assert accepted.recv(1) == b"x"
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # SO_LINGER 0: an RST
                assert read_outcome(accepted, 5) in ("eof", "reset")
        finally:
            api.delete_proxy(name)
