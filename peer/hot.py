"""`hot_frozen`: the dataclass decorator of the types built once per message, event or
write.

It lives apart from `peer.domain` because the native build (`peer.native`) compiles
`domain`, and a compiled function cannot carry `dataclass_transform`'s marker; this
module stays Python in both builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, kw_only_default=True)
def hot_frozen(cls: type[_T]) -> type[_T]:
    """`@dataclass(frozen=True, slots=True, kw_only=True)` for the types built once per
    message, event or write (Send, Emit, AppendTxns, ClientReply, Proposal, Ack, Commit,
    Ping, Txn: ~150k per simulated 120 s), frozen for the type checker only.

    The type checker treats the class as frozen (`frozen_default`), so assigning a field
    is a mypy error; equality, hashing (`unsafe_hash`: the frozen class's hash), repr,
    `replace` and `fields` are those of the frozen dataclass. Only the run-time check is
    left out: a frozen dataclass's generated `__init__` sets every field through
    `object.__setattr__`, which made these objects about twice as costly to build.
    Treat instances as immutable (one Proposal serves every follower)."""
    return dataclass(slots=True, kw_only=True, unsafe_hash=True)(cls)
