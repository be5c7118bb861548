"""The peer: a re-implementation of ZooKeeper's quorum core (FLE + ZAB) as a real process.

Pure cores (`election`, `replication`, `records`) know nothing of sockets, clocks or
files; `storage` and `node` are the adapters that do the I/O.
"""
