"""The data plane: listening proxies, proxied connections and their toxic chains.

This module owns sockets, timers and the event loop's clock for proxied traffic. It asks
`toxics` for every decision (does a toxic apply, how long to hold, how to cut) and only
carries them out. It does not speak HTTP and does not format JSON. Deadlines (latency,
bandwidth, slicer, slow_close holds) go through `timerfd`, which wakes the loop within
tens of microseconds of a deadline, where asyncio's own timers run up to 1 ms late.

A connection is two sockets (`_Side`: client side, upstream side) and two links
(`upstream`: client to server, `downstream`: server to client). The sockets are driven
by the loop's `add_reader`/`add_writer` callbacks, not by asyncio transports: a small
message then costs one callback, one `recv_into` and one `send`, the least asyncio
allows. With no toxic in a link's direction, bytes go straight from one socket to the
other (the fast path; no task, no clock read, no allocation: sockets are read into one
buffer per loop, and a chunk is copied only when the destination cannot take it at
once). With toxics, each chunk is copied, stamped with its read time and queued; one
pump task per link walks the chain for each chunk in order. Flow control: the source
stops reading while the destination's unsent output is above WRITE_HIGH (until it is
down to WRITE_LOW) or the pump's queue holds more than `QUEUE_LIMIT` bytes, so a slow
reader never grows memory without bound.

Differences from Toxiproxy 2.12 (deliberate, each covered by a test):
- a half-close is relayed as a half-close (Toxiproxy closes the whole pair, which loses
  a reply sent after the client's shutdown(SHUT_WR));
- toxicity is rolled when a toxic is attached to a connection or updated, never
  re-rolled because another toxic was added or removed;
- reset_peer always ends in an RST (SO_LINGER 0 is set when it fires), also when the
  toxic was added to a live connection, and a reset_peer toxic that rolled "no" has no
  side effect on later closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import random
import socket
import struct
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, assert_never

from faults.toxiproxy import toxics
from faults.toxiproxy.address import bind_listener, split_host_port
from faults.toxiproxy.errors import ApiError
from faults.toxiproxy.timerfd import timers_for
from faults.toxiproxy.toxics import Stream, ToxicType

WRITE_HIGH = 1 << 20  # unsent output that pauses the source (bytes)
WRITE_LOW = 1 << 18
QUEUE_LIMIT = 16 << 20  # bytes queued in a toxic chain before the source pauses
RECV_BUFFER = 256 << 10  # one read at most (asyncio's own read size); one per loop
ACCEPT_BATCH = 64  # connections accepted per wake-up of a listener, at most
ACCEPT_RETRY = 1.0  # seconds without accepting after EMFILE and the like
_ACCEPT_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

log = logging.getLogger("faults.toxiproxy")


@dataclass(frozen=True, slots=True, kw_only=True)
class Toxic:
    """A toxic as configured through the API (Toxiproxy's JSON fields)."""

    name: str
    type: ToxicType
    stream: str  # as the client sent it; `direction` is the parsed value
    direction: Stream
    toxicity: float
    attributes: dict[str, int] = field(default_factory=dict)


class _Attached:
    """One toxic's state on one link of one connection."""

    __slots__ = ("active", "clock", "removed", "timer", "toxic", "transmitted", "waiter")

    def __init__(self, toxic: Toxic, active: bool) -> None:
        self.toxic = toxic
        self.active = active
        self.removed = False
        self.transmitted = 0  # limit_data's count; survives updates
        self.clock = 0.0  # bandwidth's virtual send clock (loop time)
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _RecvBuffer:
    """The one receive buffer of a loop's proxied sockets.

    Every read lands here and is consumed (sent on, or copied into a write buffer or a
    toxic queue) before the callback returns, and one loop runs one callback at a time,
    so one buffer serves all connections of all proxies: 256 KiB per process, not per
    socket.
    """

    __slots__ = ("view",)

    def __init__(self) -> None:
        self.view = memoryview(bytearray(RECV_BUFFER))


_RECV: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _RecvBuffer] = (
    weakref.WeakKeyDictionary()
)


def _recv_buffer_for(loop: asyncio.AbstractEventLoop) -> _RecvBuffer:
    buffer = _RECV.get(loop)
    if buffer is None:
        buffer = _RECV[loop] = _RecvBuffer()
    return buffer


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _tune(sock: socket.socket) -> None:
    """Non-blocking, and TCP_NODELAY: a small message goes out at once (as asyncio's
    transports and Go's net package do)."""
    sock.setblocking(False)
    with contextlib.suppress(OSError):  # not TCP (cannot happen here); harmless
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Side:
    """One socket of a proxied connection, driven by the loop's reader/writer callbacks.

    Not an asyncio transport: a transport costs a dozen Python calls per read
    (`_read_ready`, `get_buffer`, `buffer_updated`, `write`'s checks, write-buffer size
    queries), a fifth of the proxy's user-space instructions per small message
    (callgrind: 54k -> 44k per proxied round trip; the rest is asyncio's loop and the
    socket calls). Here a read is `recv_into` the loop's one receive buffer and, on
    the fast path, one `send` from it (see `Link.feed`). Output the socket cannot take
    at once is copied into `out` and sent when the socket is writable; above
    WRITE_HIGH bytes the link that writes here pauses its source until `out` is down
    to WRITE_LOW.
    """

    __slots__ = (
        "at_eof",
        "closing",
        "conn",
        "eof_pending",
        "fd",
        "link_in",
        "link_out",
        "loop",
        "open",
        "out",
        "paused",
        "reading",
        "recv",
        "sock",
    )

    def __init__(self, conn: Connection, sock: socket.socket) -> None:
        _tune(sock)
        self.conn = conn
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = conn.loop
        self.recv = conn.proxy.recv
        self.link_in: Link | None = None  # the link that reads this socket
        self.link_out: Link | None = None  # the link that writes this socket
        self.out = bytearray()  # accepted for sending, not yet taken by the kernel
        self.open = True  # the socket is not closed yet
        self.reading = False  # the loop watches it for reads
        self.at_eof = False  # the peer sent FIN: never read again
        self.paused = False  # out above WRITE_HIGH: the writing link is paused
        self.eof_pending = False  # shut down writing once `out` is sent
        self.closing = False  # close once `out` is sent

    # -- reading -------------------------------------------------------------

    def start_reading(self) -> None:
        if not self.reading and self.open and not self.at_eof and not self.closing:
            self.reading = True
            self.loop.add_reader(self.fd, self._readable)

    def stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)

    def _readable(self) -> None:
        view = self.recv.view
        try:
            nbytes = self.sock.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # a reset, typically
            self.conn.side_lost(exc)
            return
        link = self.link_in
        if nbytes:
            if link is not None:
                link.feed(view[:nbytes])
            return
        self.at_eof = True
        self.stop_reading()  # a socket at EOF stays readable: stop watching it
        if link is not None:
            link.feed_eof()

    # -- writing -------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        """Send `data`, or keep a copy of what the socket does not take now."""
        if not self.open or self.closing:
            return
        if not self.out:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.conn.side_lost(exc)
                return
            if sent == len(data):
                return
            data = data[sent:]
            self.loop.add_writer(self.fd, self._writable)
        self.out += data
        if not self.paused and len(self.out) > WRITE_HIGH:
            self.paused = True
            if self.link_out is not None:
                self.link_out.set_dst_paused(True)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.conn.side_lost(exc)
            return
        del self.out[:sent]
        if self.paused and len(self.out) <= WRITE_LOW:
            self.paused = False
            if self.link_out is not None:
                self.link_out.set_dst_paused(False)
        if self.out or not self.open:
            return
        self.loop.remove_writer(self.fd)
        if self.closing:
            self._close_now()
        elif self.eof_pending:
            self._shutdown_write()

    def write_eof(self) -> None:
        """Half-close: FIN after the pending output."""
        if not self.open or self.closing or self.eof_pending:
            return
        self.eof_pending = True
        if not self.out:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        with contextlib.suppress(OSError):  # the peer is gone; its reset will be read
            self.sock.shutdown(socket.SHUT_WR)

    # -- closing -------------------------------------------------------------

    def close(self) -> None:
        """Stop reading; close once the pending output is sent (then FIN)."""
        if not self.open or self.closing:
            return
        self.closing = True
        self.stop_reading()
        if not self.out:
            self._close_now()

    def abort(self, *, reset: bool = False) -> None:
        """Close at once, dropping pending output; with `reset`, send an RST."""
        if not self.open:
            return
        if reset:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._close_now()

    def _close_now(self) -> None:
        self.open = False
        self.stop_reading()
        if self.out:
            self.out.clear()
        self.loop.remove_writer(self.fd)
        self.sock.close()


class Link:
    """One direction of a connection: source socket -> toxic chain -> destination."""

    def __init__(self, conn: Connection, direction: Stream, src: _Side, dst: _Side) -> None:
        self.conn = conn
        self.direction = direction
        self.src = src
        self.dst = dst
        self.chain: list[_Attached] = []
        self.queue: deque[tuple[float, bytes | None]] = deque()
        self.queued = 0
        self.pump: asyncio.Task[None] | None = None
        self.dst_paused = False
        self.dst_ready: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.eof_done = False
        self.moved = 0
        src.link_in = self
        dst.link_out = self

    # -- input ---------------------------------------------------------------

    def feed(self, data: memoryview) -> None:
        """Take one read; `data` views the shared receive buffer, valid until we return."""
        if not self.chain and self.pump is None:
            # Fast path, no toxic in this direction: straight to the other socket, sent
            # from the receive buffer itself (`write` copies only what is left over).
            self.moved += len(data)
            self.dst.write(data)
            return
        self.queue.append((self.conn.loop.time(), bytes(data)))
        self.queued += len(data)
        self._update_reading()
        self._ensure_pump()

    def feed_eof(self) -> None:
        if not self.chain and self.pump is None:
            self._finish_eof()
            return
        self.queue.append((self.conn.loop.time(), None))
        self._ensure_pump()

    def set_dst_paused(self, paused: bool) -> None:
        self.dst_paused = paused
        if not paused and self.dst_ready is not None:
            _wake(self.dst_ready)
            self.dst_ready = None
        self._update_reading()

    def _update_reading(self) -> None:
        pause = self.dst_paused or self.queued > QUEUE_LIMIT
        if pause != self.reading_paused and not self.conn.closed:
            self.reading_paused = pause
            if pause:
                self.src.stop_reading()
            else:
                self.src.start_reading()

    def _ensure_pump(self) -> None:
        if self.pump is None and not self.conn.closed:
            self.pump = self.conn.loop.create_task(self._run_pump())

    # -- chain changes -------------------------------------------------------

    def attach(self, toxic: Toxic) -> None:
        attached = _Attached(toxic, toxics.applies(toxic.toxicity, self.conn.rng))
        self.chain.append(attached)
        self._arm(attached)

    def update(self, toxic: Toxic) -> None:
        for attached in self.chain:
            if attached.toxic.name == toxic.name:
                attached.toxic = toxic
                # Toxiproxy re-runs an updated toxic's stub: a fresh roll and timer.
                attached.active = toxics.applies(toxic.toxicity, self.conn.rng)
                self._arm(attached)
                attached.wake()

    def detach(self, name: str) -> bool:
        """Remove a toxic; True when the connection must close (a removed timeout)."""
        for attached in self.chain:
            if attached.toxic.name == name:
                self.chain.remove(attached)
                attached.removed = True
                if attached.timer is not None:
                    attached.timer.cancel()
                attached.wake()
                # Toxiproxy closes a connection whose timeout toxic is removed, rolled
                # or not: data it dropped would leave the stream corrupt.
                return attached.toxic.type is ToxicType.TIMEOUT
        return False

    def _arm(self, attached: _Attached) -> None:
        if attached.timer is not None:
            attached.timer.cancel()
            attached.timer = None
        toxic = attached.toxic
        if toxic.type is ToxicType.TIMEOUT and attached.active:
            timeout = toxic.attributes.get("timeout", 0)
            if timeout > 0:  # timeout 0 never closes: it only drops data
                attached.timer = self.conn.loop.call_later(toxics.millis(timeout), self.conn.close)

    # -- the pump ------------------------------------------------------------

    async def _run_pump(self) -> None:
        try:
            while self.queue and not self.conn.closed:
                stamp, data = self.queue.popleft()
                if data is None:
                    await self._through_eof(tuple(self.chain))
                    return
                self.queued -= len(data)
                self._update_reading()
                await self._through(data, stamp, tuple(self.chain), 0)
        finally:
            self.pump = None

    async def _hold(self, attached: _Attached, deadline: float | None) -> None:
        """Wait until `deadline` (loop time), or, with None, until the toxic changes.

        Returns early when the toxic is removed (a held chunk is then released at once,
        as in Toxiproxy) or the connection closes.
        """
        loop = self.conn.loop
        while not attached.removed and not self.conn.closed:
            if deadline is not None and loop.time() >= deadline:
                return
            fut: asyncio.Future[None] = loop.create_future()
            attached.waiter = fut
            # Deadlines go through the loop's timerfd: asyncio's own timers wake up to
            # 1 ms late (epoll's millisecond timeout is rounded up), see `timerfd`.
            timers = self.conn.timers
            handle = timers.call_at(deadline, _wake, fut) if deadline is not None else None
            try:
                await fut
            finally:
                attached.waiter = None
                if handle is not None:
                    handle.cancel()
            if deadline is None:
                return

    async def _through(
        self, data: bytes, stamp: float, chain: tuple[_Attached, ...], start: int
    ) -> None:
        """Carry one chunk through chain[start:] and write what comes out."""
        loop = self.conn.loop
        for index in range(start, len(chain)):
            attached = chain[index]
            if attached.removed or not attached.active:
                continue
            toxic = attached.toxic
            match toxic.type:
                case ToxicType.NOOP | ToxicType.SLOW_CLOSE:
                    continue
                case ToxicType.LATENCY:
                    # Measured from read time, so delays do not add up along a stream,
                    # but they do add up across stacked latency toxics.
                    stamp += toxics.latency_delay(toxic.attributes, self.conn.rng)
                    await self._hold(attached, stamp)
                case ToxicType.BANDWIDTH:
                    pieces = toxics.bandwidth_pieces(len(data), attached.toxic.attributes["rate"])
                    while pieces is None and not attached.removed and not self.conn.closed:
                        await self._hold(attached, None)  # rate <= 0 stalls until changed
                        rate = attached.toxic.attributes["rate"]
                        pieces = toxics.bandwidth_pieces(len(data), rate)
                    if pieces is None:
                        continue
                    for piece in pieces:
                        attached.clock = max(attached.clock, loop.time()) + piece.wait
                        await self._hold(attached, attached.clock)
                        await self._through(data[piece.start : piece.end], stamp, chain, index + 1)
                    return
                case ToxicType.SLICER:
                    for piece in toxics.slicer_pieces(len(data), toxic.attributes, self.conn.rng):
                        if piece.wait > 0:
                            await self._hold(attached, loop.time() + piece.wait)
                        await self._through(data[piece.start : piece.end], stamp, chain, index + 1)
                    return
                case ToxicType.TIMEOUT:
                    return  # dropped, not buffered
                case ToxicType.RESET_PEER:
                    # The first chunk is dropped; after `timeout` ms both peers get an RST.
                    # Like Toxiproxy, this wait is not cut short by removing the toxic.
                    await asyncio.sleep(toxics.millis(toxic.attributes.get("timeout", 0)))
                    self.conn.reset()
                    return
                case ToxicType.LIMIT_DATA:
                    cut = toxics.limit_data_cut(
                        attached.transmitted, len(data), toxic.attributes.get("bytes", 0)
                    )
                    attached.transmitted += cut.forward
                    if cut.forward:
                        await self._through(data[: cut.forward], stamp, chain, index + 1)
                    if cut.close:
                        self.conn.close()
                    return
                case _:
                    assert_never(toxic.type)
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        if self.conn.closed or not data:
            return
        if self.dst_paused:
            ready: asyncio.Future[None] = self.conn.loop.create_future()
            self.dst_ready = ready
            await ready
            if self.conn.closed:
                return
        self.moved += len(data)
        self.dst.write(data)

    async def _through_eof(self, chain: tuple[_Attached, ...]) -> None:
        for attached in chain:
            if attached.active and attached.toxic.type is ToxicType.SLOW_CLOSE:
                delay = toxics.millis(attached.toxic.attributes.get("delay", 0))
                await self._hold(attached, self.conn.loop.time() + delay)
        self._finish_eof()

    def _finish_eof(self) -> None:
        """The source ended: relay a half-close; when both directions ended, close."""
        self.eof_done = True
        if self.conn.closed:
            return
        if self.conn.both_eof():
            self.conn.close()
        else:
            self.dst.write_eof()


class Connection:
    """One accepted client and its upstream socket."""

    def __init__(self, proxy: Proxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.rng = proxy.rng
        self.timers = timers_for(self.loop)
        self.closed = False
        # Read nothing until both links exist: the client waits for the upstream dial.
        self.client = _Side(self, client)
        self.server: _Side | None = None
        self.up: Link | None = None
        self.down: Link | None = None
        proxy.connections.add(self)
        self.dialing = self.loop.create_task(self._dial())

    async def _dial(self) -> None:
        try:
            host, port = split_host_port(self.proxy.upstream)
            sock = await _connect(self.loop, host or "127.0.0.1", int(port))
        except (OSError, ValueError, ApiError):
            # Toxiproxy closes the client at once: it sees a connect, then EOF.
            self.close()
            return
        if self.closed:
            sock.close()
            return
        server = self.server = _Side(self, sock)
        self.up = Link(self, Stream.UPSTREAM, self.client, server)
        self.down = Link(self, Stream.DOWNSTREAM, server, self.client)
        for toxic in self.proxy.toxics:
            self.link(toxic.direction).attach(toxic)
        self.client.start_reading()
        server.start_reading()

    def link(self, direction: Stream) -> Link:
        link = self.up if direction is Stream.UPSTREAM else self.down
        assert link is not None
        return link

    def both_eof(self) -> bool:
        return bool(self.up and self.up.eof_done and self.down and self.down.eof_done)

    def _sides(self) -> list[_Side]:
        return [side for side in (self.client, self.server) if side is not None]

    def _finish(self) -> bool:
        if self.closed:
            return False
        self.closed = True
        self.proxy.connections.discard(self)
        self.proxy.count_closed(self)
        for link in (self.up, self.down):
            if link is None:
                continue
            for attached in link.chain:
                if attached.timer is not None:
                    attached.timer.cancel()
                attached.wake()
            if link.dst_ready is not None:
                _wake(link.dst_ready)
            if link.pump is not None and link.pump is not asyncio.current_task():
                link.pump.cancel()
        if not self.dialing.done() and self.dialing is not asyncio.current_task():
            self.dialing.cancel()
        return True

    def close(self) -> None:
        """Close both sockets (pending writes are flushed first, then FIN)."""
        if self._finish():
            for side in self._sides():
                side.close()

    def reset(self) -> None:
        """Close both sockets with an RST (SO_LINGER 0), as reset_peer does."""
        if self._finish():
            for side in self._sides():
                side.abort(reset=True)

    def side_lost(self, exc: OSError) -> None:
        """A reset or socket error on one side: drop the other side without flushing."""
        log.debug("proxy %s: connection lost: %s", self.proxy.name, exc)
        if self._finish():
            for side in self._sides():
                side.abort()


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected non-blocking socket to host:port (each resolved address in turn)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        targets: list[tuple[int, tuple[Any, ...]]] = [(i[0], i[4]) for i in infos]
    else:  # a literal address: no resolver thread
        targets = [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]
    failure: OSError = OSError(f"no address for {host}")
    for family, address in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:  # cancelled: the connection closed while dialing
            sock.close()
            raise
        return sock
    raise failure


class Proxy:
    """A named proxy: its configuration, listener, live connections and toxics."""

    def __init__(
        self,
        *,
        name: str,
        listen: str,
        upstream: str,
        loop: asyncio.AbstractEventLoop,
        rng: random.Random,
        on_closed: Callable[[Proxy, Connection], None],
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.loop = loop
        self.rng = rng
        self.toxics: list[Toxic] = []
        self.connections: set[Connection] = set()
        self.listener: socket.socket | None = None
        self.recv = _recv_buffer_for(loop)
        self._on_closed = on_closed
        self._retry: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Listen on `listen` (replaced by the bound address) unless already running."""
        if self.listener is not None:
            return
        sock, bound = bind_listener(self.listen)
        self.listener = sock
        self.loop.add_reader(sock.fileno(), self._accept)
        self.listen = bound
        self.enabled = True

    def _accept(self) -> None:
        listener = self.listener
        if listener is None:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _ACCEPT_OUT_OF_RESOURCES:
                    raise
                # Out of descriptors or memory: stop accepting for a while, as asyncio's
                # servers do, rather than spin on a listener that stays readable.
                log.warning("proxy %s: accept: %s; retrying in 1 s", self.name, exc)
                self.loop.remove_reader(listener.fileno())
                self._retry = self.loop.call_later(ACCEPT_RETRY, self._resume_accepting)
                return
            Connection(self, client)

    def _resume_accepting(self) -> None:
        self._retry = None
        if self.listener is not None:
            self.loop.add_reader(self.listener.fileno(), self._accept)

    def stop(self) -> None:
        """Stop listening and close every live connection."""
        if self.listener is not None:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self.enabled = False
        for conn in list(self.connections):
            conn.close()

    def count_closed(self, conn: Connection) -> None:
        self._on_closed(self, conn)

    def ordered_toxics(self) -> list[Toxic]:
        """Toxiproxy's listing order: upstream toxics, then downstream, each by insertion."""
        return [t for t in self.toxics if t.direction is Stream.UPSTREAM] + [
            t for t in self.toxics if t.direction is Stream.DOWNSTREAM
        ]

    def find_toxic(self, name: str) -> Toxic | None:
        return next((t for t in self.toxics if t.name == name), None)

    def _links(self, direction: Stream) -> list[Link]:
        links = (
            conn.up if direction is Stream.UPSTREAM else conn.down for conn in self.connections
        )
        return [link for link in links if link is not None]

    def add_toxic(self, toxic: Toxic) -> None:
        self.toxics.append(toxic)
        for link in self._links(toxic.direction):
            link.attach(toxic)

    def update_toxic(self, toxic: Toxic) -> None:
        self.toxics = [toxic if t.name == toxic.name else t for t in self.toxics]
        for link in self._links(toxic.direction):
            link.update(toxic)

    def remove_toxic(self, name: str) -> None:
        toxic = self.find_toxic(name)
        if toxic is None:
            return
        self.toxics.remove(toxic)
        for link in self._links(toxic.direction):
            if link.detach(name):
                link.conn.close()
