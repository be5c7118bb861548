"""toxiproxy-python 0.1.1 against the server, as the recorded pyclient transcript uses it.

The library keeps its host and port in class attributes (process-global) and has no
timeouts, so it is confined to this module and pointed at the server per test.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest
import toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from tests.toxiproxy.conftest import connect, exchange, read_outcome


@pytest.fixture
def server(toxiproxy_url: str) -> Iterator[toxiproxy.Toxiproxy]:
    parsed = urllib.parse.urlsplit(toxiproxy_url)
    client = toxiproxy.Toxiproxy()
    client.update_api_consumer(parsed.hostname, parsed.port)
    yield client


def test_pyclient_flow(server: toxiproxy.Toxiproxy, name: str, echo: str) -> None:
    assert server.running()
    assert server.version().startswith(b'{"version": "2.')
    proxy = server.create(upstream=echo, name=name)
    assert proxy.listen.startswith("127.0.0.1:") and proxy.enabled
    with pytest.raises(ProxyExists):
        server.create(upstream=echo, name=name)
    assert name in server.proxies()
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    with pytest.raises(ProxyExists):  # the library maps a 409 on toxics to ProxyExists
        proxy.add_toxic(type="latency", attributes={"latency": 100})
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="bogus")
    toxic = proxy.get_toxic("latency_downstream")
    assert toxic.type == "latency" and toxic.attributes == {"latency": 100, "jitter": 0}
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"ping")[1] >= 0.1
    assert proxy.destroy_toxic("latency_downstream")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("latency_downstream")
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"ping")[0] == b"ping"
        proxy.disable()
        assert read_outcome(sock, 2) == "eof"
    assert server.get_proxy(name).enabled is False
    proxy.enable()
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        connect(proxy.listen)
    with connect(proxy.listen) as sock:
        assert exchange(sock, b"up")[0] == b"up"
    assert server.reset()
    proxy.destroy()
    assert name not in server.proxies()


def test_pyclient_populate_is_client_side(
    server: toxiproxy.Toxiproxy, name: str, echo: str
) -> None:
    created = server.populate([{"name": name, "upstream": echo, "listen": "127.0.0.1:0"}])
    assert [p.name for p in created] == [name]
    listen = server.get_proxy(name).listen
    # with the real (bound) listen string the entry is unchanged and kept
    assert server.populate([{"name": name, "upstream": echo, "listen": listen}]) == []
    server.destroy(server.get_proxy(name))
