"""An embedded, Toxiproxy 2.12 compatible server, and a typed client for it.

The package owns everything about network faults through a proxy: the pure toxic
decisions (`toxics`), the data plane (`proxy`, with sub-millisecond deadlines from
`timerfd`), the REST API (`api`, over `httpwire`), the server process (`server`, run
with `python -m faults.toxiproxy`), a client that also works against a real
toxiproxy-server (`client`) and the process launcher (`process`, with the parent-death
signal of `parent_death`, which the harness's launcher shares). It must not import the
harness or the peer.
"""
