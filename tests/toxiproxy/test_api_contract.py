"""The REST contract over raw HTTP: routes, status codes, exact bodies, content types.

Expected bodies are the ones recorded from toxiproxy-server 2.12.0
(/work/shared/toxiproxy-recorded/api_transcript*.txt), with ports replaced by the ones
this run bound (nothing listens on a fixed port).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.toxiproxy.conftest import Reply, raw

ERR_HEADERS = {"content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff"}


def _recorded_toxics() -> list[tuple[str, bytes]]:
    lines = (Path(__file__).parent / "recorded_toxics.txt").read_text().splitlines()
    lines = [line for line in lines if not line.startswith("#")]
    return [(lines[i], lines[i + 1].encode()) for i in range(0, len(lines), 2)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error(message: str, status: int) -> bytes:
    return f'{{"error":"{message}","status":{status}}}\n'.encode()


def assert_error(reply: Reply, status: int, message: str) -> None:
    assert reply.status == status
    headers = reply.headers
    for key, value in ERR_HEADERS.items():
        assert headers[key] == value
    body = reply.body
    assert body == _error(message, status)


def test_version(toxiproxy_url: str) -> None:
    reply = raw(toxiproxy_url, "GET", "/version")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json;charset=utf-8"
    assert reply.body.startswith(b'{"version": "2.') and reply.body.endswith(b'"}\n')


def test_proxy_lifecycle_exact_bodies(toxiproxy_url: str, name: str) -> None:
    u = toxiproxy_url
    create = f'{{"name":"{name}","listen":"127.0.0.1:0","upstream":"127.0.0.1:30002"}}'
    reply = raw(u, "POST", "/proxies", create)
    assert reply.status == 201 and reply.headers["content-type"] == "application/json"
    listen = reply.json()["listen"]
    assert listen.startswith("127.0.0.1:") and not listen.endswith(":0")
    expected = (
        f'{{"name":"{name}","listen":"{listen}","upstream":"127.0.0.1:30002",'
        '"enabled":true,"Logger":{},"toxics":[]}'
    ).encode()
    assert reply.body == expected  # compact, key order, no trailing newline
    assert_error(raw(u, "POST", "/proxies", create), 409, "proxy already exists")
    assert raw(u, "GET", f"/proxies/{name}").body == expected
    assert reply.headers.get("x-toxiproxy-request-id")
    # listen clash -> Go's bind error as a 500
    clash = f'{{"name":"{name}x","listen":"{listen}","upstream":"127.0.0.1:1"}}'
    assert_error(
        raw(u, "POST", "/proxies", clash),
        500,
        f"listen tcp {listen}: bind: address already in use",
    )
    delete = raw(u, "DELETE", f"/proxies/{name}")
    assert delete.status == 204 and delete.body == b""
    assert_error(raw(u, "DELETE", f"/proxies/{name}"), 404, "proxy not found")


def test_disabled_at_birth_keeps_raw_listen_until_started(toxiproxy_url: str, name: str) -> None:
    port = _free_port()
    body = (
        f'{{"name":"{name}","upstream":"127.0.0.1:30002",'
        f'"listen":"localhost:{port}","enabled":false}}'
    )
    reply = raw(toxiproxy_url, "POST", "/proxies", body)
    assert reply.status == 201
    assert reply.json()["listen"] == f"localhost:{port}" and reply.json()["enabled"] is False
    enabled = raw(toxiproxy_url, "PATCH", f"/proxies/{name}", '{"enabled":true}').json()
    assert enabled["listen"] == f"127.0.0.1:{port}" and enabled["enabled"] is True
    raw(toxiproxy_url, "DELETE", f"/proxies/{name}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"listen":"127.0.0.1:0","upstream":"127.0.0.1:30002"}', "missing required field: name"),
        ('{"name":"x","listen":"127.0.0.1:0"}', "missing required field: upstream"),
        ('{"name":"badjson"', "bad request body: unexpected EOF"),
        ("", "bad request body: EOF"),
        (
            '{"name":"badtype","upstream":5}',
            "bad request body: json: cannot unmarshal number into Go struct field "
            "Proxy.upstream of type string",
        ),
    ],
)
def test_create_errors(toxiproxy_url: str, body: str, message: str) -> None:
    assert_error(raw(toxiproxy_url, "POST", "/proxies", body), 400, message)


def test_not_found_and_method_rules(toxiproxy_url: str, name: str) -> None:
    u = toxiproxy_url
    raw(u, "POST", "/proxies", f'{{"name":"{name}","listen":"127.0.0.1:0","upstream":"a:1"}}')
    assert_error(raw(u, "GET", "/proxies/nope-nothing"), 404, "proxy not found")
    for path in ("/nope", f"/proxies/{name}/", f"/proxies/{name}/toxics/", "/metrics"):
        reply = raw(u, "GET", path)
        assert reply.status == 404 and reply.body == b"404 page not found\n", path
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    reply = raw(u, "PUT", "/proxies")
    assert reply.status == 405 and reply.body == b"" and "content-type" not in reply.headers
    assert raw(u, "GET", "/reset").status == 405
    blocked = raw(u, "GET", "/proxies", User_Agent="Mozilla/5.0 (X11)")
    assert blocked.status == 403 and blocked.body == b"User agent not allowed\n"
    raw(u, "DELETE", f"/proxies/{name}")


def test_toxic_exchanges(toxiproxy_url: str, name: str) -> None:
    u = toxiproxy_url
    raw(u, "POST", "/proxies", f'{{"name":"{name}","listen":"127.0.0.1:0","upstream":"a:1"}}')
    base = f"/proxies/{name}/toxics"
    lat = raw(u, "POST", base, '{"type":"latency","attributes":{"latency":50,"jitter":0}}')
    assert lat.status == 200 and lat.headers["content-type"] == "application/json"
    assert lat.body == (
        b'{"attributes":{"latency":50,"jitter":0},"name":"latency_downstream",'
        b'"type":"latency","stream":"downstream","toxicity":1}'
    )
    again = raw(u, "POST", base, '{"type":"latency","attributes":{"latency":50,"jitter":0}}')
    assert_error(again, 409, "toxic already exists")
    cases = [
        ('{"type":"nonsense"}', "invalid toxic type"),
        (
            '{"type":"latency","stream":"sideways"}',
            "stream was invalid, can be either upstream or downstream",
        ),
        ("", "bad request body: EOF"),
        (
            '{"type":"latency","name":"badattr","attributes":{"latency":"fifty"}}',
            "bad request body: json: cannot unmarshal string into Go struct field "
            "LatencyToxic.attributes.latency of type int64",
        ),
    ]
    for body, message in cases:
        assert_error(raw(u, "POST", base, body), 400, message)
    # same name in the other stream is still a clash
    clash = '{"type":"slicer","name":"latency_downstream","stream":"upstream"}'
    assert_error(raw(u, "POST", base, clash), 409, "toxic already exists")
    for body, reply_body in _recorded_toxics():
        reply = raw(u, "POST", base, body)
        assert (reply.status, reply.body) == (200, reply_body), body
    listing = raw(u, "GET", base).json()
    streams = [t["stream"].lower() for t in listing]
    assert streams == sorted(streams, key=lambda s: s != "upstream")  # upstream first
    assert [t["name"] for t in listing if t["stream"].lower() == "upstream"] == [
        "up_lat",
        "bandwidth_upstream",
        "latency_UPSTREAM",
    ]
    # updates: attributes merged on top, toxicity only if given, name/type/stream ignored
    one = f"{base}/latency_downstream"
    patched = raw(u, "PATCH", one, '{"attributes":{"jitter":5}}')
    assert patched.body == (
        b'{"attributes":{"latency":50,"jitter":5},"name":"latency_downstream",'
        b'"type":"latency","stream":"downstream","toxicity":1}'
    )
    posted = raw(u, "POST", one, '{"toxicity":0.25,"name":"zzz","type":"noop","stream":"upstream"}')
    assert posted.json() == {
        "attributes": {"latency": 50, "jitter": 5},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 0.25,
    }
    assert raw(u, "GET", one).body == posted.body
    assert_error(
        raw(u, "PATCH", one, '{"toxicity":"x"}'),
        400,
        "bad request body: json: cannot unmarshal string into Go struct field "
        ".toxicity of type float32",
    )
    assert_error(raw(u, "PATCH", f"{base}/nope", '{"attributes":{}}'), 404, "toxic not found")
    assert_error(raw(u, "GET", f"{base}/nope"), 404, "toxic not found")
    assert_error(
        raw(u, "POST", "/proxies/nope-nothing/toxics", '{"type":"latency"}'), 404, "proxy not found"
    )
    assert raw(u, "DELETE", one).status == 204
    assert_error(raw(u, "DELETE", one), 404, "toxic not found")
    # proxy update keeps toxics; name in the body is ignored
    off = raw(u, "PATCH", f"/proxies/{name}", '{"enabled":false,"name":"renamed"}').json()
    assert (
        off["name"] == name and off["enabled"] is False and len(off["toxics"]) == len(listing) - 1
    )
    assert_error(
        raw(u, "PATCH", f"/proxies/{name}", '{"listen":"not-an-addr"}'),
        500,
        "address not-an-addr: missing port in address",
    )
    assert_error(
        raw(u, "PATCH", f"/proxies/{name}", '{"enabled":'), 400, "bad request body: unexpected EOF"
    )
    assert_error(
        raw(u, "PATCH", "/proxies/nope-nothing", '{"enabled":false}'), 404, "proxy not found"
    )
    raw(u, "DELETE", f"/proxies/{name}")


def test_populate(toxiproxy_url: str, name: str) -> None:
    u = toxiproxy_url
    a, b = f"{name}_a", f"{name}_b"
    reply = raw(
        u,
        "POST",
        "/populate",
        f'[{{"name":"{a}","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}},'
        f'{{"name":"{b}","listen":"127.0.0.1:0","upstream":"127.0.0.1:2","enabled":false}}]',
    )
    assert reply.status == 201 and reply.headers["content-type"] == "application/json"
    proxies = reply.json()["proxies"]
    assert [p["name"] for p in proxies] == [a, b]
    assert [p["enabled"] for p in proxies] == [True, False]
    listen_a = proxies[0]["listen"]
    raw(u, "POST", f"/proxies/{a}/toxics", '{"type":"latency"}')
    # unchanged entry (even with enabled:false, even as localhost) is kept exactly
    port_a = listen_a.rsplit(":", 1)[1]
    same = raw(
        u,
        "POST",
        "/populate",
        f'[{{"name":"{a}","listen":"localhost:{port_a}","upstream":"127.0.0.1:1","enabled":false,'
        '"toxics":[{"type":"slicer"}]}]',
    ).json()["proxies"][0]
    assert same["enabled"] is True and same["listen"] == listen_a and len(same["toxics"]) == 1
    # changed upstream: replaced, toxics dropped
    changed = raw(
        u, "POST", "/populate", f'[{{"name":"{a}","listen":"{listen_a}","upstream":"127.0.0.1:9"}}]'
    ).json()["proxies"][0]
    assert changed["upstream"] == "127.0.0.1:9" and changed["toxics"] == []
    # validation first: nothing applied
    bad = raw(
        u,
        "POST",
        "/populate",
        f'[{{"name":"{name}_c","listen":"127.0.0.1:0","upstream":"x:1"}},{{"listen":"127.0.0.1:0"}}]',
    )
    assert bad.status == 400 and bad.headers["content-type"] == "application/json"
    assert (
        bad.body
        == b'{"error":"missing required field: name at proxy 2","status":400,"proxies":null}'
    )
    assert f"{name}_c" not in raw(u, "GET", "/proxies").json()
    # runtime error: stops there, earlier entries stay and are listed
    clash = raw(
        u,
        "POST",
        "/populate",
        f'[{{"name":"{name}_d","listen":"127.0.0.1:0","upstream":"x:1"}},'
        f'{{"name":"{name}_e","listen":"{listen_a}","upstream":"x:1"}}]',
    )
    assert clash.status == 500
    assert clash.json()["error"] == f"listen tcp {listen_a}: bind: address already in use"
    assert [p["name"] for p in clash.json()["proxies"]] == [f"{name}_d"]
    notalist = raw(u, "POST", "/populate", '{"name":"notalist"}')
    assert notalist.status == 400 and notalist.json()["proxies"] is None
    assert notalist.json()["error"].startswith(
        "bad request body: json: cannot unmarshal object into Go value of type []struct"
    )
    empty = raw(u, "POST", "/populate", "[]")
    assert (empty.status, empty.body) == (201, b'{"proxies":null}')
    listing = raw(u, "GET", "/proxies").json()
    assert list(listing) == sorted(listing)
    for proxy in (a, b, f"{name}_d"):
        assert raw(u, "DELETE", f"/proxies/{proxy}").status == 204


def test_reset_enables_and_clears(toxiproxy_url: str, name: str) -> None:
    u = toxiproxy_url
    raw(
        u,
        "POST",
        "/proxies",
        f'{{"name":"{name}","listen":"127.0.0.1:0","upstream":"x:1","enabled":false}}',
    )
    raw(u, "POST", f"/proxies/{name}/toxics", '{"type":"latency"}')
    reply = raw(u, "POST", "/reset", "ignored body")
    assert reply.status == 204 and reply.body == b""
    after = raw(u, "GET", f"/proxies/{name}").json()
    assert after["enabled"] is True and after["toxics"] == []
    raw(u, "DELETE", f"/proxies/{name}")


def test_non_loopback_listen_refused(toxiproxy_url: str, name: str, embedded_only: None) -> None:
    for listen in ("0.0.0.0:0", ""):
        body = f'{{"name":"{name}","listen":"{listen}","upstream":"x:1"}}'
        reply = raw(toxiproxy_url, "POST", "/proxies", body)
        assert reply.status == 400 and b"--allow-non-loopback" in reply.body


def test_keep_alive_serves_several_requests(toxiproxy_url: str) -> None:
    import http.client
    import urllib.parse

    parsed = urllib.parse.urlsplit(toxiproxy_url)
    conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/version")
            response = conn.getresponse()
            assert response.status == 200 and response.read().endswith(b"\n")
    finally:
        conn.close()
