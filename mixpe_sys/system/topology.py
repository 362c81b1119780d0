"""The inter-chip network as a ``networkx.DiGraph``.

Nodes are ``chip0 .. chipN-1`` (and ``switch`` for a switch topology). Every
link is bidirectional: two directed edges, each with ``bandwidth_bytes_per_s``
and ``latency_ns``. Routes are lowest-latency paths (fewest hops when the
latencies are equal), as in :mod:`mixpe_sys.hw.noc`.
"""

from __future__ import annotations

import math

import networkx as nx

from ..errors import ConfigError
from .config import LinkConfig, TopologyConfig, TopologyKind

SWITCH_NODE = "switch"


def chip_node(index: int) -> str:
    """Graph node name of chip ``index``."""
    return f"chip{index}"


def torus_shape(num_chips: int, rows: int = 0) -> tuple[int, int]:
    """(rows, cols) of a 2D torus of ``num_chips`` (``rows`` 0: the largest divisor <= sqrt)."""
    if rows:
        return rows, num_chips // rows
    r = max(d for d in range(1, math.isqrt(num_chips) + 1) if num_chips % d == 0)
    return r, num_chips // r


def build_graph(config: TopologyConfig, num_chips: int) -> nx.DiGraph:
    """The directed link graph of ``num_chips`` chips wired as ``config`` says.

    Raises
    ------
    ConfigError
        When some chip cannot reach another (an explicit edge list that leaves a chip out).
    """
    g = nx.DiGraph()
    for i in range(num_chips):
        g.add_node(chip_node(i))

    def link(a: str, b: str, bw: float, latency: float) -> None:
        for u, v in ((a, b), (b, a)):
            g.add_edge(u, v, bandwidth_bytes_per_s=bw, latency_ns=latency)

    kind = config.kind
    if kind is TopologyKind.EXPLICIT:
        for e in config.edges:
            link(chip_node(e.a), chip_node(e.b), e.bandwidth_bytes_per_s, e.latency_ns)
    else:
        ln: LinkConfig = config.link
        bw, lat = ln.bandwidth_bytes_per_s, ln.latency_ns
        if kind is TopologyKind.SWITCH:
            for i in range(num_chips):
                link(chip_node(i), SWITCH_NODE, bw, lat)
        elif kind is TopologyKind.RING:
            for i in range(num_chips):
                j = (i + 1) % num_chips
                if i != j:
                    link(chip_node(i), chip_node(j), bw, lat)
        else:
            rows, cols = torus_shape(num_chips, config.rows)
            for r in range(rows):
                for c in range(cols):
                    here = chip_node(r * cols + c)
                    right = chip_node(r * cols + (c + 1) % cols)
                    down = chip_node(((r + 1) % rows) * cols + c)
                    for other in (right, down):
                        if other != here:
                            link(here, other, bw, lat)
    if num_chips > 1 and not nx.is_strongly_connected(g):
        cut = sorted(set(chip_node(i) for i in range(num_chips)) - nx.node_connected_component(g.to_undirected(),
                                                                                               chip_node(0)))
        raise ConfigError(f"field 'topology.edges': chip0 cannot reach {', '.join(cut)}")
    return g


def route(graph: nx.DiGraph, src: str, dst: str) -> list[tuple[str, str]]:
    """Directed edges of the lowest-latency path from ``src`` to ``dst`` (fewest hops among equals)."""
    # latency first, then hop count: the tiny per-hop term only breaks ties between equal latencies
    path = nx.shortest_path(graph, src, dst, weight=lambda u, v, d: d["latency_ns"] + 1e-9)
    return list(zip(path, path[1:]))


def describe_graph(graph: nx.DiGraph) -> str:
    """One line: nodes, links and the distinct link bandwidths and latencies."""
    kinds = sorted({(d["bandwidth_bytes_per_s"], d["latency_ns"]) for _, _, d in graph.edges(data=True)})
    links = ", ".join(f"{bw / 1e9:g} GB/s + {lat:g} ns" for bw, lat in kinds)
    return f"{graph.number_of_nodes()} nodes, {graph.number_of_edges() // 2} links ({links} per direction)"
