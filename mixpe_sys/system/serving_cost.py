"""Serving iteration cost on one replica of a system (tensor- and pipeline-parallel).

An iteration's sequences go through the replica's stages. With one stage the
time is the stage's compute plus its collectives (two all-reduces per layer
over the iteration's tokens, an all-gather of the logits), each timed alone
on the links; with several stages the iteration's sequences are split into
micro-batches (at most ``SystemConfig.microbatches``, balanced by tokens)
that flow through the pipeline (:mod:`.pipeline`, simulated per distinct
iteration). Energy is the compute energy of every chip (link energy is not
modelled). Iteration costs are cached by composition, as on one chip.
"""

from __future__ import annotations

from typing import Sequence

from ..serving.config import ServingConfig
from ..serving.interpolation import Cost
from ..serving.iteration_cost import ITERATION_CACHE_SIZE
from ..serving.iteration_ops import SeqWork
from ..sim.engine import CostCache
from ..workload.quant import QuantScheme
from .collectives import CollectiveKind, CollectiveTimer
from .parallel import ReplicaPlan
from .pipeline import Pass, collectives_isolated, pipeline_time_ns
from .presets import System
from .stage_cost import ServingStageCosts
from .topology import chip_node
from ..serving.lru import IterationMemo


def split_works(works: Sequence[SeqWork], parts: int) -> list[list[SeqWork]]:
    """Split an iteration's sequence works into at most ``parts`` groups with balanced tokens (each work,
    largest first, to the group with the fewest tokens so far; ties to the lowest group)."""
    parts = max(1, min(parts, len(works)))
    groups: list[list[SeqWork]] = [[] for _ in range(parts)]
    load = [0] * parts
    for w in sorted(works, key=lambda w: (-w.q, w.kv_len, w.emits)):
        i = min(range(parts), key=lambda j: (load[j], j))
        groups[i].append(w)
        load[i] += w.q
    return groups


class SystemIterationCost(IterationMemo):
    """Time (ns) and energy (J) of serving iterations on one replica.

    Parameters
    ----------
    plan:
        The replica's stages and chips.
    system:
        The system (links, collective algorithm, micro-batches).
    stage_costs:
        Per-chip stage costs (may be shared by the replicas: it holds no chip identity).
    reuse:
        Reuse collective times measured alone where no link can be shared (False: run every
        collective of a pipelined iteration on the links; the same results).
    """

    def __init__(self, plan: ReplicaPlan, system: System, stage_costs: ServingStageCosts, *, reuse: bool = True):
        self.plan, self.system, self.stage_costs = plan, system, stage_costs
        self.timer = CollectiveTimer(system.graph, system.config.collective)
        self.live = not (reuse and collectives_isolated(plan, system.graph, system.config.collective))
        self.microbatches = system.config.pipeline_microbatches
        self._nodes = [chip_node(c) for c in plan.stages[0].chips]
        super().__init__(ITERATION_CACHE_SIZE)

    def compute_iteration(self, key: tuple[SeqWork, ...]) -> Cost:
        plan = self.plan
        if plan.pp == 1:
            sp = self.stage_costs.stage_pass(plan.stages[0], key)
            t = sp.compute_ns
            if sp.all_reduce_bytes > 0:
                t += 2 * sp.num_layers * self.timer.time_ns(CollectiveKind.ALL_REDUCE, self._nodes, sp.all_reduce_bytes)
            if sp.all_gather_bytes > 0:
                t += self.timer.time_ns(CollectiveKind.ALL_GATHER, self._nodes, sp.all_gather_bytes)
            cost = Cost(t, sp.energy_j * plan.tp)
        else:
            passes, energy = [], 0.0
            for m, group in enumerate(split_works(key, self.microbatches)):
                stages = tuple(self.stage_costs.stage_pass(st, group) for st in plan.stages)
                energy += sum(sp.energy_j for sp in stages) * plan.tp
                passes.append(Pass("serve", 0, m, stages))
            t, _ = pipeline_time_ns(passes, plan, self.system.graph, self.timer, self.live)
            cost = Cost(t, energy)
        return cost

    def cost(self, works: Sequence[SeqWork]) -> Cost:
        """Cost of an iteration doing ``works`` (in any order)."""
        return self.cost_of_key(tuple(sorted(works)))

    def stats(self) -> dict[str, int]:
        """Iteration-cache and collective counters."""
        return {"iteration_cache_hits": self.iteration_hits, "iteration_cache_misses": self.iteration_misses,
                "collectives_simulated": self.timer.simulated}


def make_stage_costs(plan: ReplicaPlan, system: System, quant: QuantScheme, config: ServingConfig,
                     cache: CostCache) -> ServingStageCosts:
    """Per-chip stage costs of ``plan`` on the system's chip."""
    return ServingStageCosts(plan.stages, plan.tp, system.chip, quant, config, cache)
