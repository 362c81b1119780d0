"""Servers timed by reservation, serving requests in the order they are booked.

A request whose service time is known when it is booked finishes at
``max(ready, previous finish) + service``. Booked in time order this gives
exactly the times a ``simpy.Resource(capacity=1)`` queue gives (first come,
first served; ``tests/test_fifo.py`` checks it against SimPy), with one event
per transfer instead of a request/hold/release chain. The compute tiles book
in a static order instead (:mod:`mixpe_sys.hw.tile`), which makes each finish
a max-plus expression of the service times: monotone in every one of them.
"""

from __future__ import annotations


class FifoServer:
    """One server (a DRAM channel, a link, an SRAM port) with busy-time accounting.

    Parameters
    ----------
    name:
        Label used in records.
    """

    __slots__ = ("name", "free_at_ns", "busy_ns", "served_bytes", "log")

    def __init__(self, name: str):
        self.name = name
        self.free_at_ns = 0.0
        self.busy_ns = 0.0
        self.served_bytes = 0
        self.log = None  # (array of floats, id): every booking appends (id, service ns, bytes) while set

    def reserve(self, now_ns: float, service_ns: float, nbytes: int = 0) -> float:
        """Book a request ready at ``now_ns`` needing ``service_ns`` after every request booked before it;
        return its finish time (ns)."""
        start = self.free_at_ns if self.free_at_ns > now_ns else now_ns
        end = start + service_ns
        self.free_at_ns = end
        self.busy_ns += service_ns
        self.served_bytes += nbytes
        log = self.log
        if log is not None:
            log[0].extend((log[1], service_ns, nbytes))
        return end
