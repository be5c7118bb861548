"""Listen addresses: Go-compatible `host:port` parsing, the loopback rule, and binding.

This module owns turning a proxy's `listen` string into a bound listening socket, with
the error texts Go's `net.Listen` gives (they reach API clients as 500 bodies), and the
rule that only loopback addresses are accepted unless the operator allows others. It
does not serve connections.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from faults.toxiproxy.errors import ApiError


def split_host_port(address: str) -> tuple[str, str]:
    """Split like Go's net.SplitHostPort; raise ApiError(500) with Go's wording."""
    if address.startswith("["):
        close = address.find("]")
        if close < 0:
            raise ApiError(500, f"address {address}: missing ']' in address")
        host, rest = address[1:close], address[close + 1 :]
        if not rest.startswith(":"):
            raise ApiError(500, f"address {address}: missing port in address")
        return host, rest[1:]
    colon = address.rfind(":")
    if colon < 0:
        raise ApiError(500, f"address {address}: missing port in address")
    host, port = address[:colon], address[colon + 1 :]
    if ":" in host:
        raise ApiError(500, f"address {address}: too many colons in address")
    return host, port


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_port(address: str, port: str) -> int:
    if port == "":
        return 0
    if not port.isdigit():
        raise ApiError(500, f"listen tcp: lookup tcp/{port}: unknown port")
    value = int(port)
    if value > 65535:
        raise ApiError(500, f"listen tcp: address {port}: invalid port")
    return value


def is_loopback_host(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    if host == "":
        return False  # Go binds all interfaces for an empty host
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_listen(listen: str, *, allow_non_loopback: bool) -> None:
    """Refuse (400) a listen address that is not loopback, unless allowed."""
    if allow_non_loopback:
        return
    host = split_host_port(listen)[0] if listen else ""
    if not is_loopback_host(host):
        raise ApiError(
            400,
            f"listen address {listen!r} is not a loopback address; "
            "start the server with --allow-non-loopback to allow it",
        )


def _resolve(host: str, port: int) -> tuple[int, tuple[str, int]]:
    """One (family, sockaddr) for host, IPv4 first like Go's resolver for localhost."""
    if host == "":
        return (socket.AF_INET6, ("::", port)) if socket.has_ipv6 else (socket.AF_INET, ("", port))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ApiError(500, f"listen tcp: lookup {host}: {exc.strerror}") from exc
    infos.sort(key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def bind_listener(listen: str) -> tuple[socket.socket, str]:
    """Bind and listen on `listen`; return the socket and the bound `host:port`.

    SO_REUSEADDR is set, as Go does, so a proxy re-enabled right after a disable gets
    its port back even with connections in TIME_WAIT.
    """
    host, port_text = split_host_port(listen) if listen else ("", "0")
    port = parse_port(listen, port_text)
    family, sockaddr = _resolve(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and sockaddr[0] == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))).lower()
        raise ApiError(
            500, f"listen tcp {join_host_port(sockaddr[0], port)}: bind: {reason}"
        ) from exc
    bound_host, bound_port = sock.getsockname()[:2]
    return sock, join_host_port(str(bound_host), int(bound_port))
