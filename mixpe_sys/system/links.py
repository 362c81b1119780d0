"""Inter-chip links as FIFO servers: transfers over a route contend for its links.

The same rule as the on-chip interconnect (:class:`mixpe_sys.hw.noc.Interconnect`; both book a
route with :func:`mixpe_sys.hw.noc.book_links`):
a transfer of ``n`` bytes is cut-through; it occupies every link of its route
for ``n / bandwidth`` in first-come-first-served order and arrives after the
data has left the busiest link plus the sum of the hop latencies. Two
transfers that share a link therefore take turns on it.
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from ..hw.fifo import FifoServer
from ..hw.noc import book_links
from .topology import route


class Fabric:
    """The links of a system graph in one SimPy environment.

    Parameters
    ----------
    env:
        The SimPy environment (time in ns).
    graph:
        Directed link graph (edges with ``bandwidth_bytes_per_s`` and ``latency_ns``).
    """

    def __init__(self, env, graph: nx.DiGraph):
        self.env = env
        self.graph = graph
        self._servers = {(u, v): (FifoServer(f"link.{u}->{v}"), d["bandwidth_bytes_per_s"])
                         for u, v, d in graph.edges(data=True)}
        self._routes: dict[tuple[str, str], tuple[list, float]] = {}
        self.sent_bytes: dict[str, float] = defaultdict(float)

    def route(self, src: str, dst: str) -> tuple[list, float]:
        """([(server, bandwidth bytes/s)] along the route, total latency ns), cached."""
        key = (src, dst)
        hit = self._routes.get(key)
        if hit is None:
            edges = route(self.graph, src, dst)
            hit = ([self._servers[e] for e in edges], sum(self.graph.edges[e]["latency_ns"] for e in edges))
            self._routes[key] = hit
        return hit

    def reserve(self, src: str, dst: str, nbytes: float) -> float:
        """Book ``nbytes`` from ``src`` to ``dst`` now; return the arrival time (ns)."""
        now = self.env.now
        if src == dst or nbytes <= 0:
            return now
        servers, latency = self.route(src, dst)
        end = book_links(servers, now, nbytes)
        self.sent_bytes[src] += nbytes
        return end + latency

    def transfer(self, src: str, dst: str, nbytes: float):
        """SimPy process body: move ``nbytes`` from node ``src`` to node ``dst``."""
        arrival = self.reserve(src, dst, nbytes)
        if arrival > self.env.now:
            yield self.env.timeout(arrival - self.env.now)

    def link_busy_ns(self) -> dict[str, float]:
        """Time each directed link spent sending (ns)."""
        return {server.name: server.busy_ns for server, _ in self._servers.values()}
