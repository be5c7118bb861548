"""The simulated world: one process, one clock, one seeded scheduler, N peers on real storage.

This module owns everything the real deployment gets from the operating system, in
simulated form: the clock (integer nanoseconds that only the scheduler advances; no
sleeping, no wall clock), the network between peers (per-direction election links, one
quorum connection per learner, latency, FIFO order per link, cuts that drop data, resets
and healed cuts that close connections), processes (crash, graceful stop, restart,
pause) and the client workload. The peers themselves are the real cores
(`peer.election.Election`, `peer.replication.Replica`) on the real `peer.storage.Storage`
in a per-run directory, driven by `SimPeer`, which performs effects through the same
`peer.effect_dispatch.EffectRunner` as `peer.node.Node` (only the transport hooks are
simulated) and writes the same events. It must not decide which faults
happen (that is the plan) nor judge the run (that is the checker).

Theory of operation.
- The scheduler is a heap of (time, seq, action, args); `seq` breaks ties in insertion
  order, so a run is a pure function of the seed. Every random choice (message delays, client
  timing and targets) comes from one `random.Random` derived from the seed; the nemesis
  resolves symbolic targets with `random.Random(seed)` and damages disks with
  `random.Random("nemesis-disk:<seed>")`, the same streams the real nemesis uses.
- A peer's inputs arrive through `SimPeer.deliver`, which drops inputs addressed to an
  earlier incarnation (a crashed process loses what was in flight to it) and queues
  them while the peer is paused (SIGSTOP: its timers and inbound data wait; they run
  in order on resume).
- A cut (partition, one-way) loses what is sent while it lasts and what was still in
  flight when it began: Toxiproxy's timeout toxic holds the data that reaches the
  proxy, and removing the toxic closes the connection with it. So does a reset.
- Election link i->j is a connection i dialed; a cut drops its data, lifting the cut
  or a reset closes it, and the next vote re-dials and first re-sends the last vote
  (as `Node._send_votes` does). Votes are not free, as they are not in ZooKeeper
  (QuorumCnxManager): each link has a send queue of capacity 1 (`SimPeer.unsent`: a
  newer vote replaces one not yet written), written by the peer's writer once the
  work in hand is done, and a peer reads the votes waiting for it in one batch that
  costs `VOTE_READ_NS` each, plus `VOTE_WRITE_NS` per vote it writes (`cpu_free`).
  Without that cost, a vote order that is not a total order (`order-ignores-epoch`:
  two votes each beat the other) answers every vote with four and the storm grows
  without bound while simulated time stands still; with it, the storm runs at the
  rate a real peer could sustain and the election's failure to settle is what the
  checker sees (majority survival). The quorum link is one connection dialed by the
  learner; closing it tells each end that still owns it `replica.disconnected`, except
  the end that closed it on purpose (`CloseQuorum`), exactly like the adapter.
- A crash loses what was not fsynced: the storage is closed and
  `faults.disk.drop_unsynced_tail` cuts the log to the last position `sync()` returned.
  A restart opens the same directory with `Storage.open`, the real recovery path.
- What a real peer prints on stderr goes where the harness keeps it, `peer-<sid>.stderr`
  in the run dir, never to the terminal: the peer configures no logging, so Python's
  last-resort handler prints its WARNING records (a skipped snapshot, a torn log tail)
  as bare messages; `PeerStderr` writes the same lines for the peer whose code is
  running, data dir paths scrubbed. A peer that refuses its data dir says so there too.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from heapq import heappop, heappush
from pathlib import Path
from typing import IO, Any, Final, assert_never

import orjson

from faults import disk
from faults.applied import failed_fields, fault_fields, hit_each_target, needs_leader
from faults.errors import FaultError
from faults.plan import (
    PROCESS_FAULTS,
    Bandwidth,
    ClusterView,
    CorruptSnapshot,
    Crash,
    Fault,
    FirstStart,
    Heal,
    Latency,
    LoseUnsynced,
    OneWay,
    Partition,
    Pause,
    PeerStatus,
    Reset,
    Resolution,
    Restart,
    Resume,
    Slicer,
    Start,
    Stop,
    TearLogTail,
    Workload,
    apply_to_net,
    resolve,
)
from faults.topology import Delay, Link, NetState
from harness.errors import HarnessError
from harness.events import HARNESS_LOG, HISTORY_LOG, peer_log_name
from harness.sim.disk import EncodeCache, SimStorage
from harness.workload import DEFINITE_REFUSALS, WorkloadConfig
from peer.config import ClusterConfig
from peer.domain import Bug, Role, ServerState, Txn
from peer.effect_dispatch import EffectRunner
from peer.effects import ClientFailure, ClientReply, Send
from peer.election import Election
from peer.errors import PeerError
from peer.messages import FollowerInfo, Notification
from peer.node import CLIENT_ERRORS, QUORUM_RETRY_S
from peer.replication import Replica
from peer.storage import Storage

NS_PER_MS = 1_000_000
# One hop over loopback and a proxy: 50..300 us, drawn per message.
HOP_MIN_NS = 50_000
HOP_MAX_NS = 300_000
HOP_SPAN_NS = HOP_MAX_NS - HOP_MIN_NS + 1
QUORUM_RETRY_NS = round(QUORUM_RETRY_S * 1e9)
SIGKILL_CODE = -9
# What a vote costs a peer's election path, measured on the real code (decode, the
# `vote_recv` line, `Election.receive`: ~55 us; encode and the `vote_sent` line: ~20
# us). A peer's votes wait while it is busy; see the module docstring.
VOTE_READ_NS = 50_000
VOTE_WRITE_NS = 20_000
HEAL_STEP = -1  # the nemesis logs its final heal as step -1

_NEWLINE = orjson.OPT_APPEND_NEWLINE
_dumps = orjson.dumps


class SimError(HarnessError):
    """The simulator was misused or its run dir cannot be written."""


class LogSink:
    """One log file's lines, kept in memory and written in large chunks: the simulator's
    logs only need to be complete and byte-identical at the end, not flushed per event
    (nothing reads them while the run goes on, except through `World.flush`).

    The lines are appended to one `bytearray`, not kept as a list of `bytes`: orjson
    allocates each result with room to spare (outside Python's small-object allocator)
    and shrinks it, so keeping thousands of them alive fragments the C heap and made
    every `orjson.dumps` about ten times slower than when its result is freed at once."""

    __slots__ = ("_handle", "buffer")

    # Bound the memory of long runs: write out once this many bytes are buffered.
    CHUNK: Final = 1 << 20

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.buffer = bytearray()

    def flush(self) -> None:
        if self.buffer:
            self._handle.write(self.buffer)
            self.buffer.clear()
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self.flush()
            self._handle.close()


class SimLog:
    """An event log with the simulated clock: the same JSON lines as `EventWriter`
    (t, kind, sid, boot, fields, in that key order), encoded with orjson into a
    `LogSink`."""

    __slots__ = ("_buffer", "_head", "_sched", "_sink", "boot", "sid")

    def __init__(
        self, sink: LogSink, sched: Scheduler, *, sid: int | None, boot: int | None
    ) -> None:
        self._sink = sink
        self._buffer = sink.buffer
        self._sched = sched
        self.sid = sid
        self.boot = boot
        head: dict[str, Any] = {}
        if sid is not None:
            head["sid"] = sid
        if boot is not None:
            head["boot"] = boot
        self._head = head

    def emit(self, kind: str, fields: Mapping[str, Any] | None = None, **more: Any) -> None:
        # one dict display: same keys, same order as building it up with update()
        if fields:
            record = {"t": self._sched.now, "kind": kind, **self._head, **fields, **more}
        else:
            record = {"t": self._sched.now, "kind": kind, **self._head, **more}
        buffer = self._buffer
        buffer += _dumps(record, option=_NEWLINE)
        if len(buffer) >= LogSink.CHUNK:
            self._sink.flush()


class PeerStderr(logging.Handler):
    """The peer's `logging` records, as its stderr would show them (see the module
    docstring), written to the stderr file of the peer acting now (`World.acting`)."""

    def __init__(self, world: World) -> None:
        super().__init__(logging.WARNING)  # the last-resort handler's level
        self.world = world

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.world.stderr_line(self.world.acting, self.format(record))
        except Exception:  # a broken run dir must not take the simulated peer down
            self.handleError(record)


# --------------------------------------------------------------------------- scheduler


class Scheduler:
    """Simulated time and the queue of what happens next."""

    __slots__ = ("_heap", "_seq", "executed", "now")

    def __init__(self) -> None:
        self.now = 0
        # (time, seq, function, its arguments): the arguments ride in the entry so the
        # per-message path needs no closure (`call_at`)
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.executed = 0

    def at(self, t: int, action: Callable[[], None]) -> None:
        now = self.now
        self._seq = seq = self._seq + 1
        heappush(self._heap, (t if t > now else now, seq, action, ()))

    def call_at(self, t: int, function: Callable[..., None], *args: Any) -> None:
        """`at(t, lambda: function(*args))` without the closure."""
        now = self.now
        self._seq = seq = self._seq + 1
        heappush(self._heap, (t if t > now else now, seq, function, args))

    def after_ns(self, delay: int, action: Callable[[], None]) -> None:
        self._seq = seq = self._seq + 1
        heappush(self._heap, (self.now + delay, seq, action, ()))

    def call_after(self, delay: int, function: Callable[..., None], *args: Any) -> None:
        """`after_ns(delay, lambda: function(*args))` without the closure."""
        self._seq = seq = self._seq + 1
        heappush(self._heap, (self.now + delay, seq, function, args))

    def run_until(self, t_end: int) -> None:
        heap = self._heap
        pop = heappop
        done = 0
        try:
            while heap and heap[0][0] <= t_end:
                t, _, action, args = pop(heap)
                self.now = t
                action(*args)
                done += 1
        finally:
            self.executed += done
        if t_end > self.now:
            self.now = t_end


# --------------------------------------------------------------------------- network


@dataclass(slots=True, eq=False)
class QuorumConn:
    """A learner's connection to its leader (both directions use it)."""

    id: int
    learner: int
    leader: int
    open: bool = True
    # arrival time of the last message each way (TCP is FIFO per direction)
    up_at: int = 0  # learner -> leader
    down_at: int = 0  # leader -> learner
    # a cut began on that direction: what is still in flight is lost (`World.set_net`)
    up_cut: bool = False
    down_cut: bool = False


@dataclass(slots=True)
class _Outbound:
    connected: bool = False
    last: Notification | None = None


@dataclass(slots=True, eq=False)
class ClientOp:
    """One workload operation in flight."""

    op_id: int
    process: int
    op: str
    key: str
    value: str | None
    sid: int
    done: bool = False


# --------------------------------------------------------------------------- one peer


class SimPeer(EffectRunner):
    """One booted peer: the cores, its storage, timers and links. Effects run through
    `peer.effect_dispatch.EffectRunner`, the dispatch `peer.node.Node` uses; only the
    transport hooks (sending, timers, quorum links, client replies) are simulated."""

    def __init__(self, world: World, sid: int, boot: int, incarnation: int) -> None:
        self.world = world
        self.sid = sid
        self.boot = boot
        self.incarnation = incarnation
        self.paused = False
        self.alive = True
        self.deferred: list[Callable[[], None]] = []
        self.timers: dict[str, int] = {}
        self.out: dict[int, _Outbound] = {j: _Outbound() for j in world.sids if j != sid}
        self.quorum: dict[int, QuorumConn] = {}
        self.dialing: dict[int, int] = {}  # leader -> token of the dial in progress
        self._unsynced: list[Txn] = []
        self.clients: dict[int, ClientOp] = {}
        self.next_request = 1
        self._queue: deque[Callable[[], list[Any]]] = deque()
        self._busy = False
        # election traffic (see the module docstring): votes waiting to be written, one
        # per link; votes received and not yet read; when the election path is free
        self.unsent: dict[int, Notification] = {}
        self.writing = False  # a write of `unsent` is scheduled
        self.inbox: list[Notification] = []
        self.reading = False  # a read of `inbox` is scheduled
        self.cpu_free = 0
        self.storage: Storage
        self.election: Election
        self.replica: Replica

    # --- inputs -----------------------------------------------------------------

    def deliver(self, function: Callable[..., None], *args: Any) -> None:
        """Run an input now, or after resume when paused; never for a later boot."""
        if not self.alive:
            return
        if self.paused:
            self.deferred.append(partial(function, *args) if args else function)
            return
        function(*args)

    def later(self, delay_ns: int, function: Callable[..., None], *args: Any) -> None:
        """Schedule an input to this incarnation of the peer (its arguments ride in the
        scheduler entry: no closure on the per-request path)."""
        self.world.sched.call_after(delay_ns, self.deliver, function, *args)

    def input(self, call: Callable[..., list[Any]], *args: Any) -> None:
        """Run a core call and perform its effects; calls that effects queue (GoLooking,
        Decided) run after, in order, never nested. A call waits in the queue only while
        the peer is busy, so the common case builds no closure."""
        if self._busy:
            self._queue.append(partial(call, *args) if args else call)
        elif self.alive:
            self._perform(call(*args))

    def _perform(self, effects: list[Any]) -> None:
        """Perform the effects of the core call just made, then the calls they queued."""
        queue = self._queue
        world = self.world
        acting, world.acting = world.acting, self.sid
        self._busy = True
        try:
            self._run(effects)
            while queue and self.alive:
                self._run(queue.popleft()())
        finally:
            self._busy = False
            world.acting = acting
            if not self.alive:
                queue.clear()

    def _start_election(self) -> list[Any]:
        return self.election.start(
            peer_epoch=self.replica.current_epoch,
            last_zxid=self.replica.last_zxid,
            committed_zxid=self.replica.committed_zxid,
        )

    # --- transport hooks of the effect dispatch -------------------------------------

    def _send(self, to: int, message: Any) -> None:
        if isinstance(message, Notification):
            self.world.send_vote(self, to, message)
        else:
            self.world.send_zab(self, to, message)

    def _on_send(self, effect: Send) -> None:
        # `EffectRunner._on_send` with `_send` inlined: the path of every message
        message = effect.message
        if isinstance(message, Notification):
            self.world.send_vote(self, effect.to, message)
        else:
            self.world.send_zab(self, effect.to, message)

    def _set_timer(self, name: str, delay_ms: int) -> None:
        world = self.world
        world.tokens = token = world.tokens + 1
        self.timers[name] = token
        world.sched.call_after(delay_ms * NS_PER_MS, self._timer_due, name, token)

    def _cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)

    def _connect_leader(self, leader: int) -> None:
        self.world.connect_leader(self, leader)

    def _close_quorum(self, peer: int) -> None:
        self.dialing.pop(peer, None)
        conn = self.quorum.get(peer)
        if conn is not None:
            self.world.close_conn(conn, closer=self.sid)

    def _client_reply(self, reply: ClientReply) -> None:
        op = self.clients.pop(reply.request, None)
        if op is not None:
            self.world.workload.reply(self.sid, op, reply)

    def _timer_due(self, name: str, token: int) -> None:
        # `later`'s `deliver` inlined: one closure per timer
        if not self.alive:
            return
        if self.paused:
            self.deferred.append(lambda: self._fire(name, token))
            return
        self._fire(name, token)

    def _fire(self, name: str, token: int) -> None:
        if self.timers.get(name) != token:
            return  # cancelled or re-armed since
        del self.timers[name]
        core: Election | Replica = self.election if name.startswith("election.") else self.replica
        self.input(core.on_timer, name)


# --------------------------------------------------------------------------- workload


class SimWorkload:
    """Jepsen-style clients over simulated time, writing `history.jsonl` with the fields
    `harness.workload.Workload` writes (invoke/ok/fail/info with process, op, id, key,
    value, zxid, peer). Each client runs one operation at a time at the configured
    rate; after an `info` it takes a new process number, as the real clients do."""

    def __init__(self, world: World, config: WorkloadConfig, log: SimLog) -> None:
        self.world = world
        self.config = config
        self.log = log
        self.on = True
        self.stopping = False
        self.next_op = 0
        self.leader_hint: int | None = None
        self.period_ns = round(config.clients / config.rate * 1e9)
        self.timeout_ns = round(config.timeout_s * 1e9)
        self.idle: dict[int, int] = {}  # client index -> process, while the workload is off
        self.counts = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        self._clients: dict[int, tuple[int, int, int]] = {}  # op id -> (index, process, t0)

    def start(self) -> None:
        for index in range(self.config.clients):
            first = self.world.rng.randrange(self.period_ns)
            self.world.sched.after_ns(first, lambda i=index: self._next(i, i))  # type: ignore[misc]

    def set_enabled(self, on: bool) -> None:
        self.on = on
        if on:
            waiting, self.idle = self.idle, {}
            for index, process in sorted(waiting.items()):
                self.world.sched.after_ns(0, lambda i=index, p=process: self._next(i, p))  # type: ignore[misc]

    def _next(self, index: int, process: int) -> None:
        if self.stopping:
            return
        if not self.on:
            self.idle[index] = process
            return
        world = self.world
        rng = world.rng
        hint = self.leader_hint
        sid = hint if hint is not None and rng.random() < 0.9 else rng.choice(world.sids)
        key = f"k{rng.randrange(self.config.keys)}"
        name = "read" if rng.random() < self.config.read_fraction else "write"
        op_id = self.next_op
        self.next_op += 1
        value = f"p{process}-op{op_id}" if name == "write" else None
        op = ClientOp(op_id=op_id, process=process, op=name, key=key, value=value, sid=sid)
        self.counts["invoke"] += 1
        self.log.emit("invoke", process=process, op=name, id=op_id, key=key, value=value, peer=sid)
        self._clients[op_id] = (index, process, world.sched.now)
        world.sched.call_after(self.timeout_ns, self.complete, op, "info", "timeout")
        peer = world.peers.get(sid)
        if peer is None or not peer.alive:
            # connection refused: the request never left, definitely not applied
            world.sched.call_after(world.hop(), self.complete, op, "fail", "refused")
            return
        peer.later(world.hop(), world.client_request, peer, op)

    def complete(self, op: ClientOp, kind: str, error: str | None = None, **more: Any) -> None:
        if op.done:
            return  # the client already gave up (timeout) or got its answer
        op.done = True
        self.counts[kind] += 1
        fields: dict[str, Any] = {"process": op.process, "op": op.op, "id": op.op_id}
        fields["key"] = op.key
        if op.op == "write":
            fields["value"] = op.value
        if error is not None:
            fields["error"] = error
        fields.update(more)
        self.log.emit(kind, fields)
        if kind == "ok" and op.op == "write":
            self.leader_hint = op.sid
        elif kind != "ok" and error in ("timeout", "connection lost", "refused"):
            self.leader_hint = None
        index, process, started = self._clients.pop(op.op_id)
        if kind == "info":
            process += self.config.clients
        due = max(started + self.period_ns, self.world.sched.now)
        self.world.sched.call_at(due, self._next, index, process)

    def reply(self, sid: int, op: ClientOp, reply: ClientReply) -> None:
        """A peer answered a write; the answer travels one hop back."""
        self.world.sched.call_after(self.world.hop(), self._arrive, sid, op, reply)

    def _arrive(self, sid: int, op: ClientOp, reply: ClientReply) -> None:
        if reply.ok:
            self.complete(op, "ok", zxid=reply.zxid, peer=sid)
            return
        error = CLIENT_ERRORS.get(reply.error, "stopped") if reply.error else "stopped"
        if reply.leader is not None:
            self.leader_hint = reply.leader
        self.complete(op, "fail" if error in DEFINITE_REFUSALS else "info", error)

    def connection_lost(self, op: ClientOp) -> None:
        """The peer died with the request sent: the outcome is unknown."""
        self.world.sched.after_ns(
            self.world.hop(), lambda: self.complete(op, "info", "connection lost")
        )


# --------------------------------------------------------------------------- the world


@dataclass(slots=True)
class SimStats:
    faults: int = 0
    boots: int = 0
    messages: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldSpec:
    seed: int
    config: ClusterConfig
    bug: Bug | None = None
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)


class World:
    """The simulated cluster: scheduler, network, processes, nemesis and workload."""

    def __init__(self, spec: WorldSpec, run_dir: Path, data_root: Path) -> None:
        self.spec = spec
        self.config = spec.config
        self.sids: tuple[int, ...] = tuple(sorted(spec.config.members))
        self.voters = spec.config.voters
        self.roles: dict[int, Role] = spec.config.roles
        self.run_dir = run_dir
        self.data_root = data_root
        self.sched = Scheduler()
        self.rng = random.Random(f"quorum-chaos-sim:{spec.seed}")
        self._random = self.rng.random
        self.nemesis_rng = random.Random(spec.seed)
        self.disk_rng = random.Random(f"nemesis-disk:{spec.seed}")
        self.stats = SimStats()
        self.peers: dict[int, SimPeer] = {}
        self.boots: dict[int, int] = {}
        self.synced: dict[int, tuple[str, int]] = {}  # last durable position at shutdown
        self.net = NetState(down=frozenset(self.sids))
        self.view = ClusterView(status={s: PeerStatus.NEW for s in self.sids})
        self.tokens = 0  # timer and dial tokens, one counter
        self.encoded = EncodeCache()  # log records of the txns peers pass around
        self._arrived = self._zab_arrived  # one bound method for every quorum message
        self._conn_ids = 0
        self._incarnations = 0
        self._link_clock: dict[tuple[int, int], int] = {}  # election links
        self._delays: tuple[Delay, ...] = ()
        self._delay_of: dict[tuple[int, int], Delay] = {}
        # election link -> how many times data in flight on it was lost (cut, reset);
        # a vote that finds the count changed on arrival is dropped
        self._link_losses: dict[tuple[int, int], int] = {}
        self._sinks: list[LogSink] = []
        self._peer_logs: dict[int, LogSink] = {}
        self._stderr: dict[int, LogSink] = {}
        self.acting: int | None = None  # whose code runs now (for its stderr lines)
        self._peer_logger = logging.getLogger("peer")
        self._propagate = self._peer_logger.propagate
        self._stderr_handler = PeerStderr(self)
        self._peer_logger.addHandler(self._stderr_handler)
        self._peer_logger.propagate = False  # the run's, not this process's, output
        self.harness = SimLog(self._open(HARNESS_LOG), self.sched, sid=None, boot=None)
        history = SimLog(self._open(HISTORY_LOG), self.sched, sid=None, boot=None)
        self.workload = SimWorkload(self, spec.workload, history)

    # --- plumbing ----------------------------------------------------------------

    def _open(self, name: str) -> LogSink:
        sink = LogSink((self.run_dir / name).open("wb"))
        self._sinks.append(sink)
        return sink

    def flush(self) -> None:
        """Write every buffered log line out (for readers during a run)."""
        for sink in self._sinks:
            sink.flush()

    def close(self) -> None:
        for peer in self.peers.values():
            if peer.alive:
                peer.alive = False
                peer.storage.close()
        self._peer_logger.removeHandler(self._stderr_handler)
        self._peer_logger.propagate = self._propagate
        for sink in self._sinks:
            sink.close()

    def stderr_line(self, sid: int | None, text: str) -> None:
        """A line on a peer's stderr (`peer-<sid>.stderr`, as the launcher names it);
        with no peer acting, on the simulator's own (`sim.stderr`)."""
        self._stderr_of(sid).buffer += f"{self._scrub(text)}\n".encode()

    def _stderr_of(self, sid: int | None) -> LogSink:
        key = sid if sid is not None else 0
        sink = self._stderr.get(key)
        if sink is None:
            name = f"peer-{sid}.stderr" if sid is not None else "sim.stderr"
            sink = self._stderr[key] = self._open(name)
        return sink

    def next_token(self) -> int:
        self.tokens += 1
        return self.tokens

    def hop(self) -> int:
        # random() is one C call; randint() costs several Python frames per message
        return HOP_MIN_NS + int(self._random() * HOP_SPAN_NS)

    def data_dir(self, sid: int) -> Path:
        return self.data_root / f"peer-{sid}"

    def _transit(self, src: int, dst: int) -> int:
        """Arrival time of a vote sent now on src -> dst: a hop plus the link's latency
        toxic, never before the previous vote on it (TCP is FIFO). Quorum messages
        compute the same in `send_zab`, keeping the FIFO clock on their connection."""
        delay = HOP_MIN_NS + int(self._random() * HOP_SPAN_NS)
        if self.net.delays:
            delay += self._toxic_ns(src, dst)
        key = (src, dst)
        t = self.sched.now + delay
        previous = self._link_clock.get(key, 0)
        if t <= previous:
            t = previous + 1
        self._link_clock[key] = t
        return t

    def _toxic_ns(self, src: int, dst: int) -> int:
        """The latency toxic's delay on src -> dst now (jitter drawn from the rng)."""
        delays = self.net.delays
        if delays is not self._delays:  # `NetState.delay_of` scans them: index them once
            self._delays = delays
            self._delay_of = {(d.src, d.dst): d for d in delays}
        toxic = self._delay_of.get((src, dst))
        if toxic is None:
            return 0
        jitter = toxic.jitter_ms
        extra = toxic.latency_ms + (self.rng.randint(-jitter, jitter) if jitter else 0)
        return max(0, extra) * NS_PER_MS

    # --- processes ---------------------------------------------------------------

    def start_peer(self, sid: int) -> str:
        """Boot a peer from its data dir, as `python -m peer` does (events and all)."""
        boot_no = self.boots.get(sid, 0) + 1
        self.boots[sid] = boot_no
        pid = sid * 10_000 + boot_no  # simulated: a stable stand-in for a pid
        self.harness.emit("spawn", sid=sid, pid=pid, boot=boot_no)
        self._stderr_of(sid)  # the launcher opens it at the first spawn, too
        self.stats.boots += 1
        data = self.data_dir(sid)
        data.mkdir(parents=True, exist_ok=True)
        acting, self.acting = self.acting, sid
        try:
            storage, recovered = SimStorage.open(data)
            boot = storage.next_boot()
        except (PeerError, OSError) as exc:
            # the real peer prints this and exits with code 2 before it listens
            self.stderr_line(sid, f"peer {sid}: cannot recover from {data}: {exc}")
            self.harness.emit("exit", sid=sid, pid=pid, code=2)
            return f"peer {sid} refused to start: {self._scrub(str(exc))}"
        finally:
            self.acting = acting
        self._incarnations += 1
        peer = SimPeer(self, sid, boot, self._incarnations)
        handle = self._peer_logs.get(sid)
        if handle is None:
            handle = self._peer_logs[sid] = self._open(peer_log_name(sid))
        peer.events = SimLog(handle, self.sched, sid=sid, boot=boot)
        assert isinstance(storage, SimStorage)
        storage.encoded = self.encoded
        peer.storage = storage
        bug = self.spec.bug
        member = self.config.member(sid)
        peer.events.emit(
            "boot",
            recovered.boot_fields(),
            bug=bug.value if bug else None,
            role=member.role.value,
            pid=pid,
        )
        peer.events.emit("recovered", recovered.recovered_fields())
        timing = self.config.timing
        peer.election = Election(sid=sid, roles=self.roles, timing=timing, bug=bug)
        peer.replica = Replica(
            sid=sid,
            roles=self.roles,
            timing=timing,
            bug=bug,
            snapshot_zxid=recovered.snapshot_zxid,
            state=recovered.state,
            txns=recovered.txns,
            accepted_epoch=recovered.accepted_epoch,
            current_epoch=recovered.current_epoch,
            seed=sid * 1_000_003 + boot,
        )
        self.peers[sid] = peer
        peer.events.emit(
            "listening",
            election_port=member.election_port,
            quorum_port=member.quorum_port,
            client_port=member.client_port,
        )
        peer.input(peer._start_election)
        return f"peer {sid} started, pid {pid}"

    def _scrub(self, text: str) -> str:
        """Data dir paths differ between runs; logs must not."""
        return text.replace(str(self.data_root), "<data>")

    def _take_down(self, peer: SimPeer) -> None:
        peer.alive = False
        peer.paused = False
        peer.deferred.clear()
        peer.timers.clear()
        peer.dialing.clear()
        for conn in list(peer.quorum.values()):
            self.close_conn(conn, closer=peer.sid)
        peer.quorum.clear()
        for op in list(peer.clients.values()):
            self.workload.connection_lost(op)
        peer.clients.clear()

    def kill_peer(self, sid: int) -> str:
        """SIGKILL plus a lost page cache: whatever was not fsynced is gone."""
        peer = self._up(sid, "crash")
        self._take_down(peer)
        file, offset = peer.storage.synced
        peer.storage.close()
        self.synced[sid] = (file, offset)
        detail = disk.drop_unsynced_tail(self.data_dir(sid), file, offset)
        pid = sid * 10_000 + self.boots[sid]
        self.harness.emit("exit", sid=sid, pid=pid, code=SIGKILL_CODE)
        return f"peer {sid} killed, exit code {SIGKILL_CODE}; {self._scrub(detail)}"

    def stop_peer(self, sid: int) -> str:
        """SIGTERM: the peer logs shutdown, fails its pending writes, keeps its files."""
        peer = self._up(sid, "stop")
        peer.paused = False  # SIGCONT comes first
        peer.events.emit("shutdown", reason="SIGTERM")
        for request, op in sorted(peer.clients.items()):
            self.workload.reply(
                sid, op, ClientReply(request=request, ok=False, error=ClientFailure.STOPPED)
            )
        peer.clients.clear()
        self._take_down(peer)
        self.synced[sid] = peer.storage.synced
        peer.storage.close()
        pid = sid * 10_000 + self.boots[sid]
        self.harness.emit("exit", sid=sid, pid=pid, code=0)
        return f"peer {sid} stopped, exit code 0"

    def pause_peer(self, sid: int) -> None:
        peer = self._up(sid, "pause")
        if peer.paused:
            raise SimError(f"cannot pause peer {sid}: already paused")
        peer.paused = True

    def resume_peer(self, sid: int) -> None:
        peer = self._up(sid, "resume")
        if not peer.paused:
            raise SimError(f"cannot resume peer {sid}: not paused")
        peer.paused = False
        waiting, peer.deferred = peer.deferred, []
        for action in waiting:  # in arrival order, as the kernel queued them
            self.sched.after_ns(0, lambda a=action: peer.deliver(a))  # type: ignore[misc]

    def _up(self, sid: int, what: str) -> SimPeer:
        peer = self.peers.get(sid)
        if peer is None or not peer.alive:
            raise SimError(f"cannot {what} peer {sid}: it is not running")
        return peer

    def running(self, sid: int) -> bool:
        peer = self.peers.get(sid)
        return peer is not None and peer.alive

    def leader(self) -> int | None:
        """What `Cluster.leader()` would answer: a LEADING, serving peer that a majority
        of the running, unpaused voters follow (itself included)."""
        live = [s for s in self.voters if self.running(s) and not self.peers[s].paused]
        for sid in live:
            peer = self.peers[sid]
            if peer.election.state is not ServerState.LEADING or not peer.replica.serving:
                continue
            followers = sum(
                1
                for other in live
                if other == sid
                or (
                    self.peers[other].election.state is ServerState.FOLLOWING
                    and self.peers[other].election.vote.leader == sid
                )
            )
            if followers * 2 > len(live):
                return sid
        return None

    # --- election links ------------------------------------------------------------

    def send_vote(self, peer: SimPeer, to: int, n: Notification) -> None:
        """Queue a vote on peer -> to: capacity 1, the newest vote wins. The peer's writer
        runs once its election path is free (after the batch of votes in hand)."""
        if to not in peer.out:
            return
        peer.unsent[to] = n
        if not peer.writing:
            peer.writing = True
            self.sched.at(peer.cpu_free, lambda: self._write_votes(peer))

    def _write_votes(self, peer: SimPeer) -> None:
        if not peer.alive:
            return
        if peer.paused:
            peer.deferred.append(lambda: self._write_votes(peer))
            return
        peer.writing = False
        unsent, peer.unsent = peer.unsent, {}
        written = 0
        for to, n in unsent.items():
            out = peer.out[to]
            if not out.connected:
                out.connected = True  # a fresh dial (through the proxy, which always accepts)
                if out.last is not None and out.last != n:
                    self._write_vote(peer, to, out.last)
                    written += 1
            self._write_vote(peer, to, n)
            written += 1
            out.last = n
            target = self.peers.get(to)
            if target is None or not target.alive:
                out.connected = False  # the proxy could not reach it and closed the link
        now = self.sched.now
        peer.cpu_free = (peer.cpu_free if peer.cpu_free > now else now) + written * VOTE_WRITE_NS

    def _write_vote(self, peer: SimPeer, to: int, n: Notification) -> None:
        vote = n.vote
        peer.events.emit(
            "vote_sent",
            to=to,
            leader=vote.leader,
            zxid=vote.zxid,
            peer_epoch=vote.peer_epoch,
            round=n.round,
            state=n.state.value,
        )
        self.stats.messages += 1
        target = self.peers.get(to)
        if (peer.sid, to) in self.net.cut or target is None or not target.alive:
            self.stats.dropped += 1
            return
        t = self._transit(peer.sid, to)
        self.sched.call_at(t, self._vote_arrived, target, n, self._link_losses.get((peer.sid, to)))

    def _vote_arrived(self, peer: SimPeer, n: Notification, losses: int | None) -> None:
        if not peer.alive:
            return
        if self._link_losses.get((n.sender, peer.sid)) != losses:
            self.stats.dropped += 1  # cut or reset while in flight
            return
        peer.inbox.append(n)
        if peer.reading:
            return  # a read is due: this vote joins its batch
        peer.reading = True
        if peer.cpu_free <= self.sched.now:
            self._read_votes(peer)
        else:
            self.sched.at(peer.cpu_free, lambda: self._read_votes(peer))

    def _read_votes(self, peer: SimPeer) -> None:
        """Read every vote waiting for the peer (its socket buffers) in one go, as the
        adapter's reader does with a chunk; the batch occupies the election path."""
        if not peer.alive:
            return
        if peer.paused:
            peer.deferred.append(lambda: self._read_votes(peer))
            return
        peer.reading = False
        batch, peer.inbox = peer.inbox, []
        now = self.sched.now
        peer.cpu_free = (peer.cpu_free if peer.cpu_free > now else now) + len(batch) * VOTE_READ_NS
        for n in batch:
            if not peer.alive:
                return
            self._vote_received(peer, n)

    def _vote_received(self, peer: SimPeer, n: Notification) -> None:
        vote = n.vote
        peer.events.emit(
            "vote_recv",
            {
                "from": n.sender,
                "leader": vote.leader,
                "zxid": vote.zxid,
                "peer_epoch": vote.peer_epoch,
                "round": n.round,
                "state": n.state.value,
            },
        )
        peer.input(lambda: peer.election.receive(n))

    # --- quorum links -------------------------------------------------------------

    def connect_leader(self, peer: SimPeer, leader: int) -> None:
        old = peer.quorum.get(leader)
        if old is not None:
            # the adapter cancels the link task: its `finally` reports the loss
            self.close_conn(old, closer=None)
        if leader not in peer.out:
            return
        token = self.next_token()
        peer.dialing[leader] = token
        peer.later(self.hop(), lambda: self._dial(peer, leader, token))

    def _dial(self, peer: SimPeer, leader: int, token: int) -> None:
        if peer.dialing.get(leader) != token:
            return
        if not self.running(leader):
            peer.later(QUORUM_RETRY_NS, lambda: self._dial(peer, leader, token))
            return
        del peer.dialing[leader]
        self._conn_ids += 1
        conn = QuorumConn(id=self._conn_ids, learner=peer.sid, leader=leader)
        peer.quorum[leader] = conn
        peer.input(lambda: peer.replica.connected(leader))

    def send_zab(self, peer: SimPeer, to: int, message: Any) -> None:
        conn = peer.quorum.get(to)
        if conn is None or not conn.open:
            return  # no link: the core's timeouts deal with the silence
        stats = self.stats
        stats.messages += 1
        sid = peer.sid
        net = self.net
        cut = net.cut
        if cut and (sid, to) in cut:  # no key tuple while nothing is cut
            stats.dropped += 1
            return
        target = self.peers.get(to)
        if target is None or not target.alive:
            return
        # `_transit`, inlined (the per-message path), with the FIFO clock on the conn
        sched = self.sched
        t = sched.now + HOP_MIN_NS + int(self._random() * HOP_SPAN_NS)
        if net.delays:
            t += self._toxic_ns(sid, to)
        if sid == conn.learner:
            if t <= conn.up_at:
                t = conn.up_at + 1
            conn.up_at = t
        else:
            if t <= conn.down_at:
                t = conn.down_at + 1
            conn.down_at = t
        # `sched.call_at(t, self._zab_arrived, target, conn, message)`, inlined (t > now)
        sched._seq = seq = sched._seq + 1
        heappush(sched._heap, (t, seq, self._arrived, (target, conn, message)))

    def _zab_arrived(self, peer: SimPeer, conn: QuorumConn, message: Any) -> None:
        if not peer.alive:
            return
        at_learner = peer.sid == conn.learner
        if conn.down_cut if at_learner else conn.up_cut:
            self.stats.dropped += 1  # in flight when a cut began
            return
        if peer.paused:
            peer.deferred.append(lambda: self._zab_received(peer, conn, message))
            return
        if conn.open:
            # the common case of `_zab_received`, inlined: the link is the one the peer
            # holds for the other end; `input` inlined too unless the peer is busy
            other = conn.leader if at_learner else conn.learner
            if peer.quorum.get(other) is conn:
                if peer._busy:
                    peer.input(peer.replica.receive, other, message)
                else:
                    effects = peer.replica.receive(other, message)
                    if effects:  # a PING's empty list: nothing to perform, nothing queued
                        peer._perform(effects)
                return
            if at_learner:
                return
        self._zab_received(peer, conn, message)

    def _zab_received(self, peer: SimPeer, conn: QuorumConn, message: Any) -> None:
        if not conn.open:
            return
        if peer.sid == conn.learner:
            if peer.quorum.get(conn.leader) is conn:
                peer.input(peer.replica.receive, conn.leader, message)
            return
        learner = conn.learner
        if peer.quorum.get(learner) is not conn:
            if not isinstance(message, FollowerInfo) or message.sid != learner:
                why = f"first quorum frame is {type(message).__name__}"
                peer.events.emit("bad_frame", peer=learner, why=why)
                self.close_conn(conn, closer=peer.sid)
                return
            old = peer.quorum.get(learner)
            if old is not None:
                self.close_conn(old, closer=peer.sid)
            peer.quorum[learner] = conn
        peer.input(peer.replica.receive, learner, message)

    def close_conn(self, conn: QuorumConn, *, closer: int | None) -> None:
        """Close a quorum connection. Each end that still owns it learns of it one hop
        later through `replica.disconnected`, except `closer`, the end that closed it
        on purpose (CloseQuorum) or died: like the adapter, it just forgets it."""
        if not conn.open:
            return
        conn.open = False
        for end, other in ((conn.learner, conn.leader), (conn.leader, conn.learner)):
            peer = self.peers.get(end)
            if peer is None or not peer.alive or peer.quorum.get(other) is not conn:
                continue
            if end == closer:
                del peer.quorum[other]
                continue

            def lost(p: SimPeer = peer, o: int = other) -> None:
                if p.quorum.get(o) is conn:
                    del p.quorum[o]
                    p.input(lambda: p.replica.disconnected(o))

            peer.later(self.hop(), lost)

    def reset_links(self, links: Iterable[Link]) -> int:
        """Close every connection carried by these links (the proxies bounce)."""
        touched = 0
        for i, j in sorted(links):
            self._lose_in_flight(i, j)
            src = self.peers.get(i)
            if src is not None and src.alive and j in src.out:
                src.out[j].connected = False
                touched += 1
            for a, b in ((i, j), (j, i)):
                peer = self.peers.get(a)
                if peer is None or not peer.alive:
                    continue
                conn = peer.quorum.get(b)
                if conn is not None and conn.learner == a:
                    self.close_conn(conn, closer=None)
                    touched += 1
        return touched

    def set_net(self, net: NetState) -> None:
        """Install the new fault state; links whose cut is lifted are closed, as
        Toxiproxy closes a proxy's connections when a toxic is removed."""
        lifted = self.net.cut - net.cut
        for i, j in sorted(net.cut - self.net.cut):
            self._lose_in_flight(i, j)
        self.net = net
        if lifted:
            self.reset_links(lifted)

    def _lose_in_flight(self, i: int, j: int) -> None:
        """Data in flight on i -> j is lost: the votes (by count) and the quorum
        connection's direction (by flag; the connection is closed when the cut lifts)."""
        self._link_losses[i, j] = self._link_losses.get((i, j), 0) + 1
        for a, b in ((i, j), (j, i)):
            peer = self.peers.get(a)
            conn = peer.quorum.get(b) if peer is not None else None
            if conn is None:
                continue
            if conn.learner == i:
                conn.up_cut = True
            else:
                conn.down_cut = True

    # --- client requests -------------------------------------------------------

    def client_request(self, peer: SimPeer, op: ClientOp) -> None:
        # A write is proposed even if its client already timed out: the request was in
        # the socket buffer (a paused peer reads it on resume), so `info` may commit.
        if op.op == "read":
            value = peer.replica.state.get(op.key)
            zxid = peer.replica.committed_zxid
            self.sched.after_ns(
                self.hop(),
                lambda: self.workload.complete(op, "ok", value=value, zxid=zxid, peer=peer.sid),
            )
            return
        request = peer.next_request
        peer.next_request += 1
        peer.clients[request] = op
        assert op.value is not None
        value = op.value
        peer.input(peer.replica.client_write, request, op.key, value)

    # --- the nemesis ---------------------------------------------------------------

    def apply(self, fault: Fault, *, step: int, at_ms: int | None = None) -> Resolution:
        """Resolve, apply and log one fault the way `faults.nemesis.Nemesis` does."""
        self.stats.faults += 1
        what = fault.kind.value
        self._sync_view()
        extra: dict[str, Any] = {}
        if at_ms is not None:
            extra.update(at_ms=at_ms, late_ms=0)
        if needs_leader(fault):
            leader = self.leader()
            self.view = replace(self.view, leader=leader)
            extra["leader"] = leader
        try:
            resolution = resolve(fault, self.view, self.nemesis_rng)
        except FaultError as exc:
            self._failed(step, what, f"cannot resolve targets: {exc}")
            return Resolution()
        if isinstance(fault, PROCESS_FAULTS):
            return self._apply_to_peers(fault, resolution, step, extra)
        match fault:
            case Partition() | OneWay() | Heal() | Latency() | Bandwidth() | Slicer():
                self.set_net(apply_to_net(self.net, fault, resolution))
                self._emit_fault(step, what, resolution, fault, extra)
                return resolution
            case Reset():
                count = self.reset_links(resolution.links)
                extra["detail"] = f"reset {count} connections"
                self._emit_fault(step, what, resolution, fault, extra)
                return resolution
            case Workload(on=on):
                self.workload.set_enabled(on)
                extra["detail"] = f"workload {'on' if on else 'off'}"
                self._emit_fault(step, what, resolution, fault, extra)
                return resolution
            case _:
                assert_never(fault)

    def _apply_to_peers(
        self, fault: Fault, resolution: Resolution, step: int, extra: dict[str, Any]
    ) -> Resolution:
        what = fault.kind.value

        def failed(sid: int, exc: Exception) -> None:
            self._failed(step, what, self._scrub(str(exc)), target=sid)

        applied = hit_each_target(
            fault,
            resolution,
            self.view,
            self.net,
            hit=lambda sid: self._hit(fault, sid),
            failed=failed,
            errors=(SimError, FaultError),
        )
        if applied is None:
            return replace(resolution, targets=())
        self.view, self.net = applied.view, applied.net
        extra["detail"] = applied.detail
        self._emit_fault(step, what, applied.resolution, fault, extra)
        return applied.resolution

    def _hit(self, fault: Fault, sid: int) -> str:
        match fault:
            case Crash():
                return self.kill_peer(sid)
            case Stop():
                return self.stop_peer(sid)
            case Pause():
                self.pause_peer(sid)
                return ""
            case Resume():
                self.resume_peer(sid)
                return ""
            case Restart() | Start() | FirstStart():
                if self.running(sid):
                    raise SimError(f"cannot start peer {sid}: it is running")
                return self.start_peer(sid)
            case TearLogTail() | CorruptSnapshot() | LoseUnsynced():
                if self.running(sid):
                    raise SimError(f"disk faults need a down peer, peer {sid} runs")
                return self._scrub(self._damage(fault, sid))
            case Partition() | OneWay() | Heal() | Latency() | Bandwidth() | Slicer():
                raise AssertionError(f"not a process fault: {fault!r}")
            case Reset() | Workload():
                raise AssertionError(f"not a process fault: {fault!r}")
            case _:
                assert_never(fault)

    def _damage(self, fault: TearLogTail | CorruptSnapshot | LoseUnsynced, sid: int) -> str:
        data = self.data_dir(sid)
        match fault:
            case TearLogTail(bytes=count):
                return disk.tear_log_tail(data, self.disk_rng, nbytes=count)
            case CorruptSnapshot():
                return disk.corrupt_newest_snapshot(data, self.disk_rng)
            case LoseUnsynced():
                file, offset = self.synced.get(sid, ("", 0))
                return disk.drop_unsynced_tail(data, file, offset)
            case _:
                assert_never(fault)

    def heal_all(self) -> None:
        """The nemesis's closing heal: no network faults, nobody paused (step -1)."""
        resumed = [s for s in self.sids if self.running(s) and self.peers[s].paused]
        for sid in resumed:
            self.resume_peer(sid)
        self.set_net(self.net.heal().resume(resumed))
        self.view = replace(
            self.view,
            status={
                s: PeerStatus.RUNNING if st is PeerStatus.PAUSED else st
                for s, st in self.view.status.items()
            },
        )
        self._emit_fault(
            HEAL_STEP, "heal", Resolution(targets=tuple(resumed)), None, {"detail": "healed all"}
        )

    def _sync_view(self) -> None:
        status = dict(self.view.status)
        for sid, believed in self.view.status.items():
            if believed in (PeerStatus.RUNNING, PeerStatus.PAUSED) and not self.running(sid):
                status[sid] = PeerStatus.CRASHED  # exited on its own (refused to recover)
        if status != self.view.status:
            gone = [s for s in self.sids if status[s] is PeerStatus.CRASHED]
            self.view = replace(self.view, status=status)
            self.net = self.net.take_down(gone)

    def _emit_fault(
        self,
        step: int,
        what: str,
        resolution: Resolution,
        fault: Fault | None,
        extra: Mapping[str, Any],
    ) -> None:
        self.harness.emit("fault", fault_fields(step, what, resolution, self.net, fault, extra))

    def _failed(self, step: int, what: str, why: str, *, target: int | None = None) -> None:
        self.harness.emit("fault_failed", failed_fields(step, what, why, target))

    # --- the end ----------------------------------------------------------------

    def shutdown(self, reason: str) -> None:
        """Stop every running peer gracefully and write run_end."""
        for sid in self.sids:
            if self.running(sid):
                self.stop_peer(sid)
        self.harness.emit("run_end", reason=reason)
