"""Interconnect: a ``networkx.DiGraph`` whose links are FIFO servers with bandwidth and latency."""

from __future__ import annotations

from functools import lru_cache
from math import ceil, sqrt

import networkx as nx

from ..metrics.recorder import Recorder
from .config import NocConfig, Topology
from .fifo import FifoServer

DRAM_NODE = "dram"
GBUF_NODE = "gbuf"


def tile_node(index: int) -> str:
    """Graph node name of compute tile ``index``."""
    return f"tile{index}"


def build_topology(config: NocConfig, num_tiles: int, has_gbuf: bool,
                   dram_bandwidth_bytes_per_s: float) -> nx.DiGraph:
    """The interconnect graph: nodes ``dram``, ``gbuf`` (optional), ``tile0..``, routers.

    Every link is bidirectional (two directed edges) with attributes
    ``bandwidth_bytes_per_s`` and ``latency_ns``.
    """
    g = nx.DiGraph()
    ends = [DRAM_NODE] + ([GBUF_NODE] if has_gbuf else []) + [tile_node(t) for t in range(num_tiles)]
    dram_bw = config.dram_link_bandwidth_bytes_per_s or dram_bandwidth_bytes_per_s

    def link(a: str, b: str) -> None:
        bw = dram_bw if DRAM_NODE in (a, b) else config.link_bandwidth_bytes_per_s
        for u, v in ((a, b), (b, a)):
            g.add_edge(u, v, bandwidth_bytes_per_s=bw, latency_ns=config.link_latency_ns)

    if config.topology is Topology.STAR:
        for node in ends:
            link(node, "switch")
    elif config.topology is Topology.RING:
        for a, b in zip(ends, ends[1:] + ends[:1]):
            if a != b:
                link(a, b)
    else:
        cols = ceil(sqrt(num_tiles))
        rows = ceil(num_tiles / cols)
        for r in range(rows):
            for c in range(cols):
                here = f"r{r}_{c}"
                g.add_node(here)
                if c + 1 < cols:
                    link(here, f"r{r}_{c + 1}")
                if r + 1 < rows:
                    link(here, f"r{r + 1}_{c}")
        for t in range(num_tiles):
            link(tile_node(t), f"r{t // cols}_{t % cols}")
        link(DRAM_NODE, "r0_0")
        if has_gbuf:
            link(GBUF_NODE, f"r{rows - 1}_{cols - 1}" if rows * cols > 1 else "r0_0")
    return g


@lru_cache(maxsize=64)
def _topology(config: NocConfig, num_tiles: int, has_gbuf: bool, dram_bw: float) -> nx.DiGraph:
    return build_topology(config, num_tiles, has_gbuf, dram_bw)


@lru_cache(maxsize=4096)
def _route(config: NocConfig, num_tiles: int, has_gbuf: bool, dram_bw: float, src: str, dst: str) -> tuple:
    """((u, v) edges along the lowest-latency path, total latency ns): a pure function, memoised."""
    g = _topology(config, num_tiles, has_gbuf, dram_bw)
    path = nx.shortest_path(g, src, dst, weight="latency_ns")
    edges = tuple(zip(path, path[1:]))
    return edges, sum(g.edges[e]["latency_ns"] for e in edges)


def book_links(links, now_ns: float, nbytes: float) -> float:
    """Book ``nbytes`` from ``now_ns`` on every ``(FifoServer, bandwidth bytes/s)`` link of a route, each for
    ``nbytes / bandwidth`` (cut-through); return the end of data on the busiest link (ns)."""
    end = now_ns
    for server, bw in links:
        finish = server.reserve(now_ns, nbytes * 1e9 / bw, nbytes)
        if finish > end:
            end = finish
    return end


class Interconnect:
    """Links as FIFO servers; a transfer is cut-through: it occupies every link of
    its route for ``bytes / bandwidth`` and pays the sum of hop latencies."""

    def __init__(self, env, config: NocConfig, recorder: Recorder, *, num_tiles: int, has_gbuf: bool,
                 dram_bandwidth_bytes_per_s: float):
        self.env = env
        self.config = config
        self.recorder = recorder
        self._key = (config, num_tiles, has_gbuf, dram_bandwidth_bytes_per_s)
        self.graph = _topology(*self._key)
        self._servers = {(u, v): (FifoServer(f"link.{u}->{v}"), d["bandwidth_bytes_per_s"])
                         for u, v, d in self.graph.edges(data=True)}
        self._routes: dict[tuple[str, str], tuple[list, float]] = {}
        for server, _ in self._servers.values():
            recorder.add_unit(server)

    def route(self, src: str, dst: str) -> tuple[list, float]:
        """([(server, bandwidth bytes/s)] along the shortest path, total latency ns), cached."""
        key = (src, dst)
        if key not in self._routes:
            edges, latency = _route(*self._key, src, dst)
            self._routes[key] = ([self._servers[e] for e in edges], latency)
        return self._routes[key]

    def reserve(self, now_ns: float, src: str, dst: str, nbytes: int) -> tuple[float, float]:
        """Book ``nbytes`` from ``src`` to ``dst``; return (end of data on the busiest link ns, route latency ns)."""
        edges, latency = self.route(src, dst)
        return book_links(edges, now_ns, nbytes), latency

    def transfer(self, src: str, dst: str, nbytes: int):
        """SimPy process body: move ``nbytes`` from ``src`` to ``dst``."""
        end, latency = self.reserve(self.env.now, src, dst, nbytes)
        yield self.env.timeout(end - self.env.now + latency)

    def servers(self) -> list[FifoServer]:
        """Every directed link's FIFO server."""
        return [server for server, _ in self._servers.values()]

    def link_bytes(self) -> dict[str, int]:
        """Bytes carried per directed link."""
        return {server.name: server.served_bytes for server, _ in self._servers.values()}
