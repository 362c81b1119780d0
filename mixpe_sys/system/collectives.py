"""All-reduce and all-gather as SimPy transfers over a :class:`~.links.Fabric`.

Ring all-reduce over ``p`` chips of ``n`` bytes (reduce-scatter then
all-gather): ``2(p-1)`` steps; in each, every chip sends ``n/p`` bytes to
the next chip of the logical ring and starts its next step once it has
received the previous step's chunk. With one uncontended hop of bandwidth
``B`` and latency ``L`` per step it takes ``2(p-1)/p * n/B + 2(p-1) * L``.
Ring all-gather of ``n`` gathered bytes is the second half: ``(p-1)`` steps
of ``n/p``. The tree algorithm is a binomial tree: ``ceil(log2 p)`` reduce
steps towards rank 0, then as many broadcast steps back, each moving the
whole ``n`` bytes (not pipelined): ``2 ceil(log2 p) (n/B + L)`` on one hop;
its all-gather sends each subtree's pieces up (``2^k n/p`` bytes at step
``k``) and broadcasts the ``n`` gathered bytes down.
The additions of the reduction are not timed (a chip adds ``n/p`` values
per step, far faster than its link delivers them).

Every transfer books the links of its route, so collectives that share links
(with each other, with pipeline activations or KV-cache transfers) contend.
:class:`CollectiveTimer` runs one collective alone on an idle copy of the
links and remembers its time, for groups whose collectives never overlap.
"""

from __future__ import annotations

import enum
import math
from typing import Sequence

import networkx as nx
import simpy

from .config import CollectiveAlgorithm
from .links import Fabric


class CollectiveKind(str, enum.Enum):
    """Which collective."""

    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"


def _ring(env, fabric: Fabric, nodes: Sequence[str], chunk: float, steps: int):
    p = len(nodes)
    received = [[env.event() for _ in range(steps)] for _ in range(p)]

    def chip(i: int):
        nxt = (i + 1) % p
        for s in range(steps):
            if s:
                yield received[i][s - 1]
            yield from fabric.transfer(nodes[i], nodes[nxt], chunk)
            received[nxt][s].succeed()

    for i in range(p):
        env.process(chip(i))
    yield env.all_of([received[i][steps - 1] for i in range(p)])


def _tree(env, fabric: Fabric, nodes: Sequence[str], nbytes: float, gather: bool):
    p = len(nodes)
    piece = nbytes / p
    depth = math.ceil(math.log2(p))
    got = [[env.event() for _ in range(depth)] for _ in range(p)]  # got[r][k]: child r + 2^k reduced into r
    has = [env.event() for _ in range(p)]  # has[r]: r holds the result

    def reduce(r: int):
        for k in range(depth):
            bit = 1 << k
            if r % (2 * bit) == bit:  # r sends its partial sum to its parent and is done reducing
                # a partial sum is the whole tensor; a gathered subtree is its ranks' pieces
                up = piece * min(bit, p - r) if gather else nbytes
                yield from fabric.transfer(nodes[r], nodes[r - bit], up)
                got[r - bit][k].succeed()
                return
            if r + bit < p:
                yield got[r][k]
        has[0].succeed()  # only rank 0 gets here

    def broadcast(r: int):
        yield has[r]
        low = (r & -r) if r else 1 << depth
        for k in reversed(range(depth)):
            bit = 1 << k
            if bit < low and r + bit < p:
                yield from fabric.transfer(nodes[r], nodes[r + bit], nbytes)
                has[r + bit].succeed()

    for r in range(p):
        env.process(reduce(r))
        env.process(broadcast(r))
    yield env.all_of(has)


def collective(env, fabric: Fabric, kind: CollectiveKind, nodes: Sequence[str], nbytes: float,
               algorithm: CollectiveAlgorithm = CollectiveAlgorithm.RING):
    """SimPy process body: one collective of ``nbytes`` over chips ``nodes``.

    ``nbytes`` is the size of the reduced tensor (all-reduce) or of the
    gathered result (all-gather). Nothing moves for one chip or zero bytes.
    """
    p = len(nodes)
    if p < 2 or nbytes <= 0:
        return
    if algorithm is CollectiveAlgorithm.TREE:
        yield from _tree(env, fabric, nodes, nbytes, gather=kind is CollectiveKind.ALL_GATHER)
        return
    steps = 2 * (p - 1) if kind is CollectiveKind.ALL_REDUCE else p - 1
    yield from _ring(env, fabric, nodes, nbytes / p, steps)


class CollectiveTimer:
    """Times of collectives run alone on idle links, cached by (kind, chips, bytes).

    Parameters
    ----------
    graph:
        The system's link graph.
    algorithm:
        Ring or tree.
    """

    def __init__(self, graph: nx.DiGraph, algorithm: CollectiveAlgorithm = CollectiveAlgorithm.RING):
        self.graph = graph
        self.algorithm = algorithm
        self._cache: dict[tuple, tuple[float, dict[str, float]]] = {}
        self.simulated = 0

    def run(self, kind: CollectiveKind, nodes: Sequence[str], nbytes: float) -> tuple[float, dict[str, float]]:
        """(time ns, bytes sent by each chip) of one collective on idle links."""
        key = (kind, tuple(nodes), float(nbytes))
        hit = self._cache.get(key)
        if hit is None:
            env = simpy.Environment()
            fabric = Fabric(env, self.graph)
            env.run(env.process(collective(env, fabric, kind, nodes, nbytes, self.algorithm)))
            hit = (float(env.now), dict(fabric.sent_bytes))
            self._cache[key] = hit
            self.simulated += 1
        return hit

    def time_ns(self, kind: CollectiveKind, nodes: Sequence[str], nbytes: float) -> float:
        """Time of one collective alone (ns)."""
        return self.run(kind, nodes, nbytes)[0]
