"""The peer: a re-implementation of ZooKeeper's quorum core (FLE + ZAB) as a real process.

Pure cores (`election`, `replication`, `records`) know nothing of sockets, clocks or
files; `storage` and `node` are the adapters that do the I/O.
"""

from peer import native as _native

# Before any other module of ours: a build of the native core, if there is one for this
# exact source, is loaded in place of the Python modules it compiles (peer/native.py).
_native.install()
