"""Micro-batches through the pipeline stages of one replica, as SimPy processes.

Each stage is a ``simpy.Resource`` of capacity one (its ``tp`` chips work in
lock step); a pass (one micro-batch of one step) takes the stages in order:
it waits for the stage, computes, runs the stage's collectives, frees the
stage and sends its activations from every chip to the same-rank chip of the
next stage over the links (all ``tp`` sends at once), then queues for the
next stage. A pass may wait for another pass to leave the last stage (a
decode step needs the token of the step before). With ``M`` micro-batches of
equal stage time ``t`` and transfer time ``a < t`` on ``pp`` stages, the last
leaves after ``(M + pp - 1) t + (pp - 1) a``.

Collectives are either run live on the shared links (contending with every
other transfer) or, when no two of them can ever share a link with each
other or with the activation sends (checked on the routes), timed alone once
and reused (exactly the same result, far fewer events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import networkx as nx
import simpy

from .collectives import CollectiveKind, CollectiveTimer, collective
from .config import CollectiveAlgorithm
from .links import Fabric
from .parallel import ReplicaPlan
from .stage_cost import StagePass
from .topology import chip_node, route


@dataclass
class StageTotals:
    """What one stage did over a simulation (per chip of the stage; ns, bytes)."""

    compute_ns: float = 0.0
    collective_ns: float = 0.0
    collective_bytes: float = 0.0  # sent by one chip (the most-sending rank for the tree)
    activation_bytes: float = 0.0  # sent by one chip to the next stage
    collectives: dict = field(default_factory=dict)  # (phase, kind) -> [count, bytes, time ns]


@dataclass(frozen=True)
class Pass:
    """One micro-batch step: its label, its per-stage costs, and the pass it waits for (index or -1)."""

    phase: str
    step: int
    microbatch: int
    stages: tuple[StagePass, ...]
    after: int = -1


def collective_links(plan: ReplicaPlan, graph: nx.DiGraph, algorithm: CollectiveAlgorithm) -> list[set]:
    """Per stage, the directed links its collectives can use."""
    out = []
    for st in plan.stages:
        nodes = [chip_node(c) for c in st.chips]
        p = len(nodes)
        pairs = set()
        if p > 1:
            if algorithm is CollectiveAlgorithm.RING:
                pairs = {(nodes[i], nodes[(i + 1) % p]) for i in range(p)}
            else:
                pairs = {(nodes[r], nodes[r - (r & -r)]) for r in range(1, p)}
                pairs |= {(b, a) for a, b in pairs}
        out.append({e for a, b in pairs for e in route(graph, a, b)})
    return out


def activation_links(plan: ReplicaPlan, graph: nx.DiGraph) -> set:
    """Links the activation sends between consecutive stages use."""
    links = set()
    for a, b in zip(plan.stages, plan.stages[1:]):
        for ca, cb in zip(a.chips, b.chips):
            links.update(route(graph, chip_node(ca), chip_node(cb)))
    return links


def collectives_isolated(plan: ReplicaPlan, graph: nx.DiGraph, algorithm: CollectiveAlgorithm) -> bool:
    """True when no link carries collectives of two stages, or a stage's collectives and activations."""
    per_stage = collective_links(plan, graph, algorithm)
    seen = set(activation_links(plan, graph))
    for links in per_stage:
        if links & seen:
            return False
        seen |= links
    return True


class PipelineRun:
    """Runs passes through a replica's stages in ``env`` over ``fabric``.

    Parameters
    ----------
    env, fabric:
        Environment (ns) and links (shared with whatever else uses them).
    plan:
        The replica's stages.
    timer:
        Collective times alone (for the reused collectives and for the bytes per chip).
    live:
        Run every collective as transfers on ``fabric`` (else reuse ``timer``'s times).
    """

    def __init__(self, env, fabric: Fabric, plan: ReplicaPlan, timer: CollectiveTimer, live: bool):
        self.env, self.fabric, self.plan, self.timer, self.live = env, fabric, plan, timer, live
        self.stage_res = [simpy.Resource(env, capacity=1) for _ in plan.stages]
        self.nodes = [[chip_node(c) for c in st.chips] for st in plan.stages]
        self.totals = [StageTotals() for _ in plan.stages]
        self.records: list[tuple] = []  # (pass index, phase, step, microbatch, stage, start ns, end ns)

    def _account(self, s: int, kind: CollectiveKind, nbytes: float, phase: str, took: float, count: int = 1):
        sent = self.timer.run(kind, self.nodes[s], nbytes)[1]
        most = max(sent.values()) if sent else 0.0
        tot = self.totals[s]
        tot.collective_ns += took
        tot.collective_bytes += most * count
        rec = tot.collectives.setdefault((phase, kind.value), [0, 0.0, 0.0])
        rec[0] += count
        rec[1] += most * count
        rec[2] += took

    def _collective(self, s: int, kind: CollectiveKind, nbytes: float, phase: str):
        if nbytes <= 0:
            return
        start = self.env.now
        yield self.env.process(collective(self.env, self.fabric, kind, self.nodes[s], nbytes, self.timer.algorithm))
        self._account(s, kind, nbytes, phase, self.env.now - start)

    def _stage(self, s: int, sp: StagePass, phase: str):
        env = self.env
        a, b, c = sp.segments
        ar, ag = sp.all_reduce_bytes, sp.all_gather_bytes
        if not self.live or ar <= 0:  # collectives alone: one hold for the whole pass
            nodes = self.nodes[s]
            ar_ns = self.timer.time_ns(CollectiveKind.ALL_REDUCE, nodes, ar) if ar > 0 else 0.0
            ag_ns = self.timer.time_ns(CollectiveKind.ALL_GATHER, nodes, ag) if ag > 0 else 0.0
            yield env.timeout(sp.compute_ns + 2 * sp.num_layers * ar_ns + ag_ns)
            if ar > 0:
                self._account(s, CollectiveKind.ALL_REDUCE, ar, phase, 2 * sp.num_layers * ar_ns, 2 * sp.num_layers)
            if ag > 0:
                self._account(s, CollectiveKind.ALL_GATHER, ag, phase, ag_ns)
        else:
            for _ in range(sp.num_layers):
                yield env.timeout(a)
                yield from self._collective(s, CollectiveKind.ALL_REDUCE, ar, phase)
                yield env.timeout(b)
                yield from self._collective(s, CollectiveKind.ALL_REDUCE, ar, phase)
                if c:
                    yield env.timeout(c)
            if sp.head_ns:
                yield env.timeout(sp.head_ns)
            yield from self._collective(s, CollectiveKind.ALL_GATHER, ag, phase)
        self.totals[s].compute_ns += sp.compute_ns

    def _send(self, s: int, nbytes: float):
        if nbytes <= 0 or s + 1 >= len(self.nodes):
            return
        procs = [self.env.process(self.fabric.transfer(src, dst, nbytes))
                 for src, dst in zip(self.nodes[s], self.nodes[s + 1])]
        self.totals[s].activation_bytes += nbytes
        yield self.env.all_of(procs)

    def run_pass(self, index: int, p: Pass, wait: simpy.Event | None = None):
        """SimPy process body of pass ``index``; ``wait`` is the event it must see first."""
        if wait is not None:
            yield wait
        for s, sp in enumerate(p.stages):
            with self.stage_res[s].request() as req:
                yield req
                start = self.env.now
                yield from self._stage(s, sp, p.phase)
                self.records.append((index, p.phase, p.step, p.microbatch, s, start, self.env.now))
            yield from self._send(s, sp.activation_bytes)

    def run_all(self, passes: Sequence[Pass]):
        """SimPy process body: every pass, each started when the one it waits for has finished."""
        done = [self.env.event() for _ in passes]

        def one(i: int, p: Pass):
            yield from self.run_pass(i, p, done[p.after] if p.after >= 0 else None)
            done[i].succeed()

        for i, p in enumerate(passes):
            self.env.process(one(i, p))
        if passes:
            yield self.env.all_of(done)


def pipeline_time_ns(passes: Sequence[Pass], plan: ReplicaPlan, graph: nx.DiGraph, timer: CollectiveTimer,
                     live: bool) -> tuple[float, PipelineRun]:
    """Run ``passes`` alone on idle links; (time of the last to finish ns, the run)."""
    env = simpy.Environment()
    run = PipelineRun(env, Fabric(env, graph), plan, timer, live)
    env.run(env.process(run.run_all(passes)))
    return float(env.now), run
