"""The peer's asyncio adapter: sockets, timers, storage calls and the event log around the
pure cores (`election.Election`, `replication.Replica`).

It owns every input and effect of the process and nothing of the protocol's rules:
- inputs (a frame from a socket, a timer firing, a client request) go to a core;
- the effects a core returns run strictly in order; persistence effects (epochs, log
  appends with fsync, truncation, snapshots) complete before the next effect, so a
  core that lists "append, then send ACK" gets exactly that (persist before send);
- every I/O fact is logged: vote_sent / vote_recv / bad_frame for traffic, logged /
  epoch_* / snapshot after the fsync that makes them true; cores' `Emit`s are logged
  as they come.

Links. Election traffic is one-way per connection: peer i sends its votes to j only on
the connection it dialed to `dial[j].election` (the proxy of link i->j), and reads
votes from the connections others dialed to it. That is what lets a harness cut one
direction of a link. ZooKeeper's QuorumCnxManager keeps one connection per pair and
drops the one dialed by the smaller sid; with a connection per direction there is
nothing to de-duplicate, so that rule has no work to do here. The quorum (ZAB) link is
a learner's single connection to its leader, used both ways, as in ZooKeeper.

Timing (delivery, never rules). Two repairs keep an election from waiting out a
notification timeout (200 ms and up) for a vote that was merely mistimed; both only
deliver late a notification the cores already produced, which FLE must tolerate anyway:
- An undelivered vote (the dial to j failed: j not listening yet, or restarting) is
  kept and sent as soon as j shows it is up again, i.e. when a notification from j
  arrives. ZooKeeper gets this from its two-way connections: j's dial makes i's
  SendWorker send its last message. The core is silent towards a same-round sender
  whose vote loses, so without this a peer that started late learns the better vote
  only from the sender's timer.
- A LOOKING notification from a newer round that arrives while this peer is still
  decided (its leader died a moment ago and it has not noticed yet) is answered by the
  core and then forgotten; it is also held here, and fed to the core again right
  after this peer enters LOOKING, if it is younger than `min_notification_ms` (later
  than that, the sender's own timer has re-sent it). Without it the peers that notice
  a dead leader last propose themselves, the early ones stay silent (their vote wins),
  and the ensemble splits until a timer fires: the ~200 ms tail of SIGKILL recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peer.wire as wire
from harness.events import EventWriter
from peer.config import ClusterConfig, Dial
from peer.domain import Bug, ServerState, Txn
from peer.effect_dispatch import EffectRunner
from peer.effects import ClientFailure, ClientReply
from peer.election import Election
from peer.messages import FollowerInfo, Notification
from peer.replication import Phase, Replica
from peer.storage import Storage

log = logging.getLogger("peer")

CONNECT_TIMEOUT_S = 0.5
QUORUM_RETRY_S = 0.05  # a learner re-dials its leader this often (ZooKeeper: 1 s)
CLIENT_WRITE_TIMEOUT_S = 2.0
MAX_CLIENT_LINE = 64 * 1024

# Client protocol error codes (underscored, see harness/client.py).
CLIENT_ERRORS: dict[ClientFailure, str] = {
    ClientFailure.NOT_LEADER: "not_leader",
    ClientFailure.NOT_SERVING: "not_serving",
    ClientFailure.LEADERSHIP_LOST: "leadership_lost",
    ClientFailure.STOPPED: "stopped",
}


@dataclass(slots=True)
class _Outbound:
    """Peer i's sending side towards j for votes: a capacity-1 queue and its writer."""

    pending: Notification | None = None
    last: Notification | None = None
    undelivered: Notification | None = None  # newest vote whose dial failed
    writer: asyncio.StreamWriter | None = None
    wake: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Quorum:
    """One quorum connection (learner <-> leader) and its reader task."""

    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None


class Node(EffectRunner):
    """One peer process: owns the sockets, timers, storage and event log; effects run
    through `peer.effect_dispatch.EffectRunner` (the same dispatch as the simulator's)."""

    def __init__(
        self,
        *,
        sid: int,
        config: ClusterConfig,
        storage: Storage,
        election: Election,
        replica: Replica,
        events: EventWriter,
        bug: Bug | None,
    ) -> None:
        self.sid = sid
        self.config = config
        self.member = config.member(sid)
        self.storage = storage
        self.election = election
        self.replica = replica
        self.events = events
        self.bug = bug
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._out: dict[int, _Outbound] = {j: _Outbound() for j in self.member.dial}
        self._quorum: dict[int, _Quorum] = {}
        self._dialing: dict[int, asyncio.Task[None]] = {}
        # FOLLOWERINFOs that arrived while this peer was still LOOKING (see _accept_quorum).
        self._early: dict[int, FollowerInfo] = {}
        # Newer-round LOOKING notifications received while decided: (loop time, note).
        self._held: dict[int, tuple[float, Notification]] = {}
        self._unsynced: list[Txn] = []
        self._clients: dict[int, asyncio.Future[ClientReply]] = {}
        self._next_request = 1
        self._servers: list[asyncio.Server] = []
        self._stopped = asyncio.Event()
        self._stop_reason = "stopped"
        self._busy = False  # guards against re-entrant effect runs
        self._queue: list[Callable[[], list[Any]]] = []
        self.ports: dict[str, int] = {}

    # --- lifecycle --------------------------------------------------------------

    async def serve(self) -> None:
        host = self.member.host
        election = await asyncio.start_server(
            self._accept_election, host, self.member.election_port, reuse_address=True
        )
        quorum = await asyncio.start_server(
            self._accept_quorum, host, self.member.quorum_port, reuse_address=True
        )
        client = await asyncio.start_server(
            self._accept_client, host, self.member.client_port, reuse_address=True
        )
        self._servers = [election, quorum, client]
        self.ports = {
            "election_port": election.sockets[0].getsockname()[1],
            "quorum_port": quorum.sockets[0].getsockname()[1],
            "client_port": client.sockets[0].getsockname()[1],
        }
        # Graceful stop is armed before `listening` is logged: whoever waits for that
        # event (the launcher, a test) may send SIGTERM at once and must get a shutdown.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
        self.events.emit("listening", self.ports)
        for j in self._out:
            self._out[j].wake = asyncio.Event()
            self._out[j].task = asyncio.create_task(self._send_votes(j))
        self._input(self._start_election)
        await self._stopped.wait()
        await self._shutdown()

    def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        self._stopped.set()

    async def _shutdown(self) -> None:
        self.events.emit("shutdown", reason=self._stop_reason)
        for handle in self._timers.values():
            handle.cancel()
        for server in self._servers:
            server.close()
        tasks = [o.task for o in self._out.values() if o.task is not None]
        tasks += [o.watcher for o in self._out.values() if o.watcher is not None]
        tasks += [q.task for q in self._quorum.values() if q.task is not None]
        tasks += list(self._dialing.values())
        for task in tasks:
            task.cancel()
        for out in self._out.values():
            if out.writer is not None:
                out.writer.close()
        for q in self._quorum.values():
            q.writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        for fut in self._clients.values():
            if not fut.done():
                fut.set_result(ClientReply(request=0, ok=False, error=ClientFailure.STOPPED))
        self.storage.close()

    # --- the one entry for every input ------------------------------------------

    def _input(self, call: Callable[[], list[Any]]) -> None:
        """Feed one input to a core and run its effects. Effects can cause further
        inputs (Decided -> replica.lead()); those queue behind, never nest.
        Once a stop is requested nothing reaches the cores any more: a peer that has
        logged `shutdown` must not propose, commit or vote (the checker holds it to that)."""
        if self._stopped.is_set():
            return
        self._queue.append(call)
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue:
                effects = self._queue.pop(0)()
                self._run(effects)
        finally:
            self._busy = False

    def _start_election(self) -> list[Any]:
        effects: list[Any] = self.election.start(
            peer_epoch=self.replica.current_epoch,
            last_zxid=self.replica.last_zxid,
            committed_zxid=self.replica.committed_zxid,
        )
        return effects + self._replay_held()

    def _replay_held(self) -> list[Any]:
        """Feed the core the newer-round votes that came while it was decided (see the
        module docstring), newest round first, each still at least as new as mine."""
        held, self._held = self._held, {}
        if not held:
            return []
        horizon = self.config.timing.min_notification_ms / 1000.0
        now = asyncio.get_running_loop().time()
        effects: list[Any] = []
        for at, n in sorted(held.values(), key=lambda h: (-h[1].round, h[1].sender)):
            if now - at > horizon or n.round < self.election.round:
                continue
            self.events.emit("vote_recv", {**_vote_fields(n), "replayed": True})
            effects += self.election.receive(n)
        return effects

    # --- effect hooks (peer.effect_dispatch applies the rest) ---------------------

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _client_reply(self, reply: ClientReply) -> None:
        fut = self._clients.pop(reply.request, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def _now_leading(self) -> None:
        self._queue.append(self._feed_early)

    def _now_following(self) -> None:
        self._drop_early()

    def _feed_early(self) -> list[Any]:
        """Now leading: hand the core the learners that dialed in before it decided."""
        effects: list[Any] = []
        early, self._early = self._early, {}
        for learner, info in sorted(early.items()):
            if learner in self._quorum:
                effects += self.replica.receive(learner, info)
        return effects

    def _drop_early(self) -> None:
        """Not leading after all: close the held learner links so those learners give up
        and look again at once instead of waiting out init_limit."""
        early, self._early = self._early, {}
        for learner in early:
            q = self._quorum.pop(learner, None)
            if q is not None:
                q.writer.close()

    # --- timers -----------------------------------------------------------------

    def _set_timer(self, name: str, delay_ms: int) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(delay_ms / 1000.0, self._fire, name)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        core: Election | Replica = self.election if name.startswith("election.") else self.replica
        self._input(lambda: core.on_timer(name))

    # --- sending ----------------------------------------------------------------

    def _send(self, to: int, message: Any) -> None:
        if isinstance(message, Notification):
            out = self._out.get(to)
            if out is None:
                return  # no route configured to that member
            out.pending = message
            if out.wake is not None:
                out.wake.set()
            return
        q = self._quorum.get(to)
        if q is None or q.writer.is_closing():
            return  # no link: the core's timeouts deal with the silence
        q.writer.write(wire.encode(message))

    async def _send_votes(self, j: int) -> None:
        """The capacity-1 send queue towards j: always send the newest vote."""
        out = self._out[j]
        assert out.wake is not None
        dial: Dial = self.member.dial[j]
        while True:
            await out.wake.wait()
            out.wake.clear()
            message = out.pending
            out.pending = None
            if message is None:
                continue
            if out.writer is None or out.writer.is_closing():
                link = await self._dial(dial.election.host, dial.election.port)
                if link is None:
                    # Kept for when j shows up (_vote_received); the timer re-sends too.
                    out.undelivered = message
                    continue
                reader, out.writer = link
                out.watcher = asyncio.create_task(self._watch(reader, out.writer))
                if out.last is not None and out.last != message:
                    self._write_vote(j, out.writer, out.last)
            self._write_vote(j, out.writer, message)
            out.last = message
            out.undelivered = None
            try:
                await out.writer.drain()
            except (ConnectionError, OSError):
                out.writer.close()
                out.writer = None

    def _write_vote(self, j: int, writer: asyncio.StreamWriter, n: Notification) -> None:
        writer.write(wire.encode(n))
        self.events.emit(
            "vote_sent",
            to=j,
            leader=n.vote.leader,
            zxid=n.vote.zxid,
            peer_epoch=n.vote.peer_epoch,
            round=n.round,
            state=n.state.value,
        )

    @staticmethod
    async def _watch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A dialed election connection carries nothing back: reading only notices its
        end (a reset or a disabled proxy), so the next vote re-dials at once."""
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(4096):
                pass
        writer.close()

    @staticmethod
    async def _dial(
        host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            return None

    # --- receiving votes --------------------------------------------------------

    async def _accept_election(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = _peer_name(writer)
        decoder = wire.FrameDecoder()
        try:
            while chunk := await reader.read(65536):
                try:
                    messages = decoder.feed(chunk)
                except wire.FrameError as exc:
                    self.events.emit("bad_frame", peer=peer, why=str(exc), port="election")
                    return
                for message in messages:
                    if not isinstance(message, Notification):
                        why = f"{type(message).__name__} on the election port"
                        self.events.emit("bad_frame", peer=peer, why=why, port="election")
                        return
                    self._vote_received(message)
        except (ConnectionError, OSError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    def _vote_received(self, n: Notification) -> None:
        self.events.emit("vote_recv", _vote_fields(n))
        election = self.election
        if (
            n.state is ServerState.LOOKING
            and election.state is not ServerState.LOOKING
            and n.round > election.round
            and n.sender in self._out
        ):
            self._held[n.sender] = (asyncio.get_running_loop().time(), n)
        self._input(lambda: election.receive(n))
        # n proves its sender is up: deliver the vote a failed dial left behind, unless
        # the core just queued a newer one.
        out = self._out.get(n.sender)
        if out is not None and out.undelivered is not None and out.pending is None:
            out.pending, out.undelivered = out.undelivered, None
            if out.wake is not None:
                out.wake.set()

    # --- quorum links -----------------------------------------------------------

    async def _accept_quorum(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Leader side: a learner dialed us; its first frame says who it is."""
        peer = _peer_name(writer)
        decoder = wire.FrameDecoder()
        learner: int | None = None
        try:
            while chunk := await reader.read(65536):
                try:
                    messages = decoder.feed(chunk)
                except wire.FrameError as exc:
                    self.events.emit("bad_frame", peer=learner or peer, why=str(exc))
                    return
                for message in messages:
                    if learner is None:
                        if not isinstance(message, FollowerInfo):
                            why = f"first quorum frame is {type(message).__name__}"
                            self.events.emit("bad_frame", peer=peer, why=why)
                            return
                        if message.sid not in self.config.members or message.sid == self.sid:
                            why = f"FOLLOWERINFO from sid {message.sid}, not a member"
                            self.events.emit("bad_frame", peer=peer, why=why)
                            return
                        learner = message.sid
                        old = self._quorum.pop(learner, None)
                        if old is not None:
                            old.writer.close()
                        self._quorum[learner] = _Quorum(writer=writer)
                        if self.replica.phase is Phase.LOOKING:
                            # A follower whose finalize wait ended before ours dialed in
                            # while we are still LOOKING. ZooKeeper refuses it (no learner
                            # acceptor yet) and it re-dials; the core would drop the frame
                            # and leave the learner waiting for init_limit. Hold it until
                            # the election decides (_feed_early / _drop_early).
                            self._early[learner] = message
                            continue
                    sender = learner
                    self._input(lambda m=message, s=sender: self.replica.receive(s, m))  # type: ignore[misc]
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if learner is not None and self._owns(learner, writer):
                del self._quorum[learner]
                self._early.pop(learner, None)
                self._input(lambda: self.replica.disconnected(learner))

    def _owns(self, peer: int, writer: asyncio.StreamWriter) -> bool:
        q = self._quorum.get(peer)
        return q is not None and q.writer is writer

    def _connect_leader(self, leader: int) -> None:
        old = self._dialing.pop(leader, None)
        if old is not None:
            old.cancel()
        self._dialing[leader] = asyncio.create_task(self._learner_link(leader))

    async def _learner_link(self, leader: int) -> None:
        """Learner side: dial the leader until it answers, then read its frames."""
        dial = self.member.dial.get(leader)
        if dial is None:
            return
        writer: asyncio.StreamWriter | None = None
        while writer is None:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(dial.quorum.host, dial.quorum.port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(QUORUM_RETRY_S)
        old = self._quorum.pop(leader, None)
        if old is not None:
            old.writer.close()
        self._quorum[leader] = _Quorum(writer=writer)
        self._input(lambda: self.replica.connected(leader))
        decoder = wire.FrameDecoder()
        try:
            while chunk := await reader.read(65536):
                try:
                    messages = decoder.feed(chunk)
                except wire.FrameError as exc:
                    self.events.emit("bad_frame", peer=leader, why=str(exc))
                    return
                for message in messages:
                    self._input(lambda m=message: self.replica.receive(leader, m))  # type: ignore[misc]
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if self._owns(leader, writer):
                del self._quorum[leader]
                self._input(lambda: self.replica.disconnected(leader))

    def _close_quorum(self, peer: int) -> None:
        task = self._dialing.pop(peer, None)
        q = self._quorum.pop(peer, None)
        if q is not None:
            q.writer.close()
        if task is not None:
            task.cancel()

    # --- client port ------------------------------------------------------------

    async def _accept_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    writer.write(_reply(None, ok=False, error="bad_request", why="line too long"))
                    return
                except asyncio.IncompleteReadError:
                    return
                writer.write(await self._client_request(line))
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _client_request(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _reply(None, ok=False, error="bad_request", why="not JSON")
        if not isinstance(request, dict):
            return _reply(None, ok=False, error="bad_request", why="not a JSON object")
        rid = request.get("id")
        op = request.get("op")
        if op == "status":
            return _reply(rid, ok=True, **self.status())
        key = request.get("key")
        if not isinstance(key, str):
            return _reply(rid, ok=False, error="bad_request", why="key must be a string")
        if op == "read":
            return _reply(
                rid, ok=True, value=self.replica.state.get(key), zxid=self.replica.committed_zxid
            )
        if op != "write":
            return _reply(rid, ok=False, error="bad_request", why=f"unknown op {op!r}")
        value = request.get("value")
        if not isinstance(value, str):
            return _reply(rid, ok=False, error="bad_request", why="value must be a string")
        if self._stopped.is_set():  # shutting down: never proposed, so a definite refusal
            return _reply(rid, ok=False, error="not_serving", why="shutting down")
        request_id = self._next_request
        self._next_request += 1
        fut: asyncio.Future[ClientReply] = asyncio.get_running_loop().create_future()
        self._clients[request_id] = fut
        self._input(lambda: self.replica.client_write(request_id, key, value))
        try:
            reply = await asyncio.wait_for(asyncio.shield(fut), CLIENT_WRITE_TIMEOUT_S)
        except TimeoutError:
            self._clients.pop(request_id, None)
            return _reply(rid, ok=False, error="timeout")
        if reply.ok:
            return _reply(rid, ok=True, zxid=reply.zxid)
        error = CLIENT_ERRORS.get(reply.error, "stopped") if reply.error else "stopped"
        return _reply(rid, ok=False, error=error, leader=reply.leader)

    def status(self) -> dict[str, Any]:
        state = self.election.state
        return {
            "sid": self.sid,
            "state": state.value,
            "leader": None if state is ServerState.LOOKING else self.election.vote.leader,
            "round": self.election.round,
            "current_epoch": self.replica.current_epoch,
            "accepted_epoch": self.replica.accepted_epoch,
            "last_zxid": self.replica.last_zxid,
            "committed_zxid": self.replica.committed_zxid,
            "serving": self.replica.serving,
            "bug": self.bug.value if self.bug else None,
        }


def _reply(rid: Any, *, ok: bool, **fields: Any) -> bytes:
    body = {"id": rid, "ok": ok, **{k: v for k, v in fields.items() if v is not None}}
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def _vote_fields(n: Notification) -> dict[str, Any]:
    return {
        "from": n.sender,
        "leader": n.vote.leader,
        "zxid": n.vote.zxid,
        "peer_epoch": n.vote.peer_epoch,
        "round": n.round,
        "state": n.state.value,
    }


def _peer_name(writer: asyncio.StreamWriter) -> str:
    with contextlib.suppress(Exception):
        host, port = writer.get_extra_info("peername")[:2]
        return f"{host}:{port}"
    return "?"
