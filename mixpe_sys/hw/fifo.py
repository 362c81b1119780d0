"""First-come-first-served servers timed by reservation.

A request to a FIFO server whose service time is known when it arrives
finishes at ``max(arrival, previous finish) + service``. Computing that at
arrival gives exactly the times a ``simpy.Resource(capacity=1)`` queue would
give for requests arriving in time order (SimPy runs processes in time order),
with one timeout event per transfer instead of a request/hold/release chain
per resource. ``tests/test_fifo.py`` checks the equivalence against SimPy.
"""

from __future__ import annotations


class FifoServer:
    """One FIFO server (a DRAM channel, a link, an SRAM port) with busy-time accounting.

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
        """Queue a request arriving at ``now_ns`` needing ``service_ns``; return its finish time (ns)."""
        start = self.free_at_ns if self.free_at_ns > now_ns else now_ns
        end = start + service_ns
        self.free_at_ns = end
        self.busy_ns += service_ns
        self.served_bytes += nbytes
        log = self.log
        if log is not None:
            log[0].extend((log[1], service_ns, nbytes))
        return end
