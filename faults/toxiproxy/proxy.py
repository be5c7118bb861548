"""The data plane: listening proxies, proxied connections and their toxic chains.

This module owns sockets, timers and the event loop's clock for proxied traffic. It asks
`toxics` for every decision (does a toxic apply, how long to hold, how to cut) and only
carries them out. It does not speak HTTP and does not format JSON. Deadlines (latency,
bandwidth, slicer, slow_close holds) go through `timerfd`, which wakes the loop within
tens of microseconds of a deadline, where asyncio's own timers run up to 1 ms late.

A connection is two asyncio BufferedProtocols (client side, upstream side) and two links
(`upstream`: client to server, `downstream`: server to client). With no toxic in a
link's direction, bytes go straight from one transport to the other (the fast path; no
task, no clock read, no allocation: sockets are read with `recv_into` into one buffer
per loop, and a chunk is copied only when the destination cannot take it at once).
With toxics, each chunk is copied, stamped with its read time and queued; one pump task
per link walks the chain for each chunk in order. Flow control: the source stops
reading while the destination transport is above its high-water mark or the pump's
queue holds more than `QUEUE_LIMIT` bytes, so a slow reader never grows memory without
bound.

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
import random
import socket
import struct
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

from faults.toxiproxy import toxics
from faults.toxiproxy.address import bind_listener, split_host_port
from faults.toxiproxy.errors import ApiError
from faults.toxiproxy.timerfd import timers_for
from faults.toxiproxy.toxics import Stream, ToxicType

WRITE_HIGH = 1 << 20  # transport write buffer high-water mark (bytes)
WRITE_LOW = 1 << 18
QUEUE_LIMIT = 16 << 20  # bytes queued in a toxic chain before the source pauses
RECV_BUFFER = 256 << 10  # one read at most (asyncio's own read size); one per loop


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

    Every read lands here and is consumed (written on or copied) before the callback
    returns, and one loop runs one callback at a time, so one buffer serves all
    connections of all proxies: 256 KiB per process, not per socket.
    """

    __slots__ = ("view",)

    def __init__(self) -> None:
        self.view = memoryview(bytearray(RECV_BUFFER))

    def renew(self) -> None:
        """A fresh buffer, when a transport may still hold a view of the current one."""
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


class _Side(asyncio.BufferedProtocol):
    """One socket of a proxied connection.

    A BufferedProtocol: the transport reads into the loop's one receive buffer
    (`recv_into`), so a read allocates nothing; asyncio's plain Protocol allocates a
    256 KiB bytes per read, which glibc serves with mmap/mremap/munmap, three extra
    system calls per message. `Link.feed` copies what it must keep.
    """

    def __init__(self, conn: Connection | None, proxy: Proxy) -> None:
        self.conn = conn
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.link_in: Link | None = None  # the link that reads this socket
        self.link_out: Link | None = None  # the link that writes this socket

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        # Read nothing until both links exist: an accepted client waits for the upstream
        # dial, and the upstream side must not deliver data before it has a link.
        transport.pause_reading()
        if self.conn is None:
            self.conn = Connection(self.proxy, self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.proxy.recv.view

    def buffer_updated(self, nbytes: int) -> None:
        link = self.link_in
        if link is not None:
            link.feed(self.proxy.recv.view[:nbytes])

    def eof_received(self) -> bool:
        if self.link_in is not None:
            self.link_in.feed_eof()
        return True  # keep the socket: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.link_out is not None:
            self.link_out.set_dst_paused(True)

    def resume_writing(self) -> None:
        if self.link_out is not None:
            self.link_out.set_dst_paused(False)


class Link:
    """One direction of a connection: source socket -> toxic chain -> destination."""

    def __init__(self, conn: Connection, direction: Stream, src: _Side, dst: _Side) -> None:
        self.conn = conn
        self.direction = direction
        self.src = src
        self.dst = dst
        assert src.transport is not None and dst.transport is not None
        self.src_transport: asyncio.Transport = src.transport
        self.dst_transport: asyncio.Transport = dst.transport
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
            # Fast path, no toxic in this direction: straight to the other socket.
            self.moved += len(data)
            dst = self.dst_transport
            if dst.get_write_buffer_size():
                dst.write(bytes(data))  # it is queued behind earlier data: keep a copy
            else:
                dst.write(data)  # usually sent at once, from the buffer itself
                if dst.get_write_buffer_size():
                    # A partial send: the transport kept the rest, and some Python
                    # versions keep a view rather than a copy. Stop reusing the buffer.
                    self.conn.proxy.recv.renew()
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
                self.src_transport.pause_reading()
            else:
                self.src_transport.resume_reading()

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
        self.dst_transport.write(data)

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
        elif self.dst_transport.can_write_eof():
            self.dst_transport.write_eof()
        else:
            self.conn.close()


class Connection:
    """One accepted client and its upstream socket."""

    def __init__(self, proxy: Proxy, client: _Side) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.rng = proxy.rng
        self.timers = timers_for(self.loop)
        self.client = client
        self.server: _Side | None = None
        self.up: Link | None = None
        self.down: Link | None = None
        self.closed = False
        proxy.connections.add(self)
        self.dialing = self.loop.create_task(self._dial())

    async def _dial(self) -> None:
        assert self.client.transport is not None
        try:
            host, port = split_host_port(self.proxy.upstream)
            _, protocol = await self.loop.create_connection(
                lambda: _Side(self, self.proxy), host or "127.0.0.1", int(port)
            )
        except (OSError, ValueError, ApiError):
            # Toxiproxy closes the client at once: it sees a connect, then EOF.
            self.close()
            return
        assert isinstance(protocol, _Side)
        self.server = protocol
        if self.closed:
            if protocol.transport is not None:
                protocol.transport.close()
            return
        self.up = Link(self, Stream.UPSTREAM, self.client, protocol)
        self.down = Link(self, Stream.DOWNSTREAM, protocol, self.client)
        for toxic in self.proxy.toxics:
            self.link(toxic.direction).attach(toxic)
        self.client.transport.resume_reading()
        assert protocol.transport is not None
        protocol.transport.resume_reading()

    def link(self, direction: Stream) -> Link:
        link = self.up if direction is Stream.UPSTREAM else self.down
        assert link is not None
        return link

    def both_eof(self) -> bool:
        return bool(self.up and self.up.eof_done and self.down and self.down.eof_done)

    def _transports(self) -> list[asyncio.Transport]:
        sides = [self.client, self.server]
        return [side.transport for side in sides if side is not None and side.transport]

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
            for transport in self._transports():
                transport.close()

    def reset(self) -> None:
        """Close both sockets with an RST (SO_LINGER 0), as reset_peer does."""
        if self._finish():
            for transport in self._transports():
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        if exc is not None:
            # A reset or socket error on one side: drop the other side without flushing.
            if self._finish():
                for transport in self._transports():
                    transport.abort()
        elif not self.closed:
            # Closed under us without an EOF first: behave as Toxiproxy, close the pair.
            self.close()


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
        self.server: asyncio.Server | None = None
        self.recv = _recv_buffer_for(loop)
        self._on_closed = on_closed

    async def start(self) -> None:
        """Listen on `listen` (replaced by the bound address) unless already running."""
        if self.server is not None:
            return
        sock, bound = bind_listener(self.listen)
        self.server = await self.loop.create_server(
            lambda: _Side(None, self), sock=sock, backlog=socket.SOMAXCONN
        )
        self.listen = bound
        self.enabled = True

    def stop(self) -> None:
        """Stop listening and close every live connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
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
