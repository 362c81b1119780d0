"""Serve a request trace on replicas of a model on a system of chips.

Each replica is one ``tp x pp`` group of consecutive chips (replica ``r``
from chip ``r * tp * pp``); with disaggregation the prefill replicas come
first, then the decode replicas. Every replica's iterations are costed by a
:class:`~.serving_cost.SystemIterationCost` over its own chips and links; all
replicas share the chip's op cost cache. A disaggregated request's KV cache
moves from each chip of its prefill replica to the same-rank chip of the
same stage of its decode replica (each chip its share: its stage's layers,
its KV heads), all at once, over the system's links (or, when ``kv_link`` is
given, over a separate network where every chip has one link of that kind to
a switch), contending with the other transfers on those links.

Replicas' collectives are timed on their own links; when two replicas'
collectives could share a link (a ring split into replicas, say) the
summary says so (``replica_links_shared``), since that contention is not
simulated.
"""

from __future__ import annotations

import pandas as pd

from ..errors import ConfigError
from ..serving.cluster import ClusterResult, ClusterSimulator, Disaggregation
from ..serving.config import ServingConfig, ServingError
from ..serving.router import RouterKind
from ..hw.precision import run_quant
from ..sim.engine import CostCache
from ..workload.models import ModelSpec
from ..workload.quant import QuantScheme
from ..workload.requests import requests_from_frame
from .config import LinkConfig, TopologyConfig, TopologyKind
from .links import Fabric
from .parallel import plan_replica
from .pipeline import activation_links, collective_links
from .presets import System
from .serving_cost import SystemIterationCost, make_stage_costs
from .topology import build_graph, chip_node, describe_graph


class KvMover:
    """Moves a request's KV cache from a prefill replica to a decode replica over links, in a given env."""

    def __init__(self, graph, prefill_plans, decode_plans, quant: QuantScheme):
        self.graph, self.prefill, self.decode, self.quant = graph, prefill_plans, decode_plans, quant
        self._fabrics: dict[int, Fabric] = {}

    def transfer(self, env, src: int, dst: int, prompt_tokens: int):
        """SimPy process body: every chip pair's share of ``prompt_tokens`` tokens of KV cache, at once."""
        fabric = self._fabrics.get(id(env))
        if fabric is None:
            fabric = self._fabrics[id(env)] = Fabric(env, self.graph)
        procs = []
        for sp, sd in zip(self.prefill[src].stages, self.decode[dst].stages):
            nbytes = prompt_tokens * sp.kv_bytes_per_token(self.quant)
            for a, b in zip(sp.chips, sd.chips):
                procs.append(env.process(fabric.transfer(chip_node(a), chip_node(b), nbytes)))
        yield env.all_of(procs)


def _links_shared(plans, system: System) -> bool:
    seen: set = set()
    for plan in plans:
        links = set(activation_links(plan, system.graph))
        for s in collective_links(plan, system.graph, system.config.collective):
            links |= s
        if links & seen:
            return True
        seen |= links
    return False


def replay_system(requests: pd.DataFrame, model: ModelSpec, system: System, *, config: ServingConfig | None = None,
                  replicas: int = 1, router: RouterKind | str = RouterKind.ROUND_ROBIN,
                  disaggregate: tuple[int, int] | None = None, kv_link: LinkConfig | None = None,
                  quant: QuantScheme | None = None, cache: CostCache | None = None, workers: int = 1,
                  progress: bool | None = None, reuse: bool = True, cache_dir=None,
                  fast_forward: bool = True) -> ClusterResult:
    """Replay a request trace on ``replicas`` replicas (or ``disaggregate = (P, D)`` pools) of ``model``.

    Parameters
    ----------
    requests:
        Request trace frame (``request_id, arrival_s, prompt_tokens, output_tokens``).
    model, system:
        Model shape and system (its ``tp``, ``pp``, ``microbatches`` make one replica).
    config:
        Serving options of every replica.
    replicas, router:
        Replicas in the pool and the routing policy (``round_robin``, ``least_outstanding``, ``least_kv``).
    disaggregate:
        ``(P, D)`` prefill and decode replicas instead of one pool (``replicas`` is then ignored).
    kv_link:
        A separate network for the KV-cache transfers (one such link per chip to a switch); default the
        system's own links.
    quant, cache, workers, progress, reuse:
        Quantization scheme (default the chip's), the chip's op cost cache, processes for new ops,
        progress bar, reuse of collective times (see :class:`SystemIterationCost`).
    cache_dir:
        Persistent op-cost store of a new cache: None the default directory, a path, False none.
    fast_forward:
        Skip whole repeated periods of each GEMM's steady state (same results, bit for bit).

    Raises
    ------
    FitError
        When a chip's weights and the longest request's KV cache do not fit its DRAM.
    ConfigError
        When the system has too few chips for the replicas.
    """
    cfg = config or ServingConfig()
    chip = system.chip
    q = run_quant(chip, quant)
    pools = [replicas] if disaggregate is None else list(disaggregate)
    total = sum(pools)
    per = system.config.chips_per_replica
    if total * per > system.config.num_chips:
        raise ConfigError(f"{total} replicas of tp {system.config.tp} x pp {system.config.pp} need "
                          f"{total * per} chips, but {system.name} has {system.config.num_chips}")
    plans = [plan_replica(model, system.config, r) for r in range(total)]
    records = requests_from_frame(requests)
    if not records:
        raise ServingError("the request trace has no requests")
    longest = max(r.prompt_tokens + max(1, r.output_tokens) - 1 for r in records)
    plans[0].check_fit(q, chip.dram.capacity_bytes, longest, f"its longest request ({longest} tokens)")
    capacity = plans[0].kv_capacity_tokens(q, chip.dram.capacity_bytes)
    own = cache is None
    cache = CostCache(chip, workers=workers, cache_dir=cache_dir, fast_forward=fast_forward) if own else cache
    before = cache.simulated
    stage_costs = make_stage_costs(plans[0], system, q, cfg, cache)
    costs = [SystemIterationCost(p, system, stage_costs, reuse=reuse) for p in plans]
    disagg = None
    if disaggregate is not None:
        graph, link = system.graph, f"the system's links ({describe_graph(system.graph)})"
        if kv_link is not None:
            graph = build_graph(TopologyConfig(kind=TopologyKind.SWITCH, link=kv_link), system.config.num_chips)
            link = (f"a separate switch, one {kv_link.bandwidth_bytes_per_s / 1e9:g} GB/s + {kv_link.latency_ns:g} ns "
                    f"link per chip")
        p = disaggregate[0]
        mover = KvMover(graph, plans[:p], plans[p:], q)
        per_token = sum(st.kv_bytes_per_token(q) * len(st.chips) for st in plans[0].stages)
        disagg = Disaggregation(prefill=p, decode=disaggregate[1], transfer=mover.transfer,
                                kv_bytes_per_token=per_token, link=link)
    labels = {"model": model.name, "design": chip.name, "system": system.name, "quant": q.name,
              "tp": system.config.tp, "pp": system.config.pp, "chips_per_replica": per}
    try:
        sim = ClusterSimulator(requests, costs, cfg, kv_capacity_tokens=capacity, replicas=replicas, router=router,
                               disaggregation=disagg, progress=progress, labels=labels)
        result = sim.run()
    finally:
        if own:
            cache.close()
    s = result.summary
    s.update({"kv_capacity_tokens": capacity, "weight_bytes_per_chip": max(
        plans[0].weight_bytes_per_chip(st, q) for st in plans[0].stages),
        "simulated_ops": cache.simulated - before,
        "iteration_cache_hits": sum(c.iteration_hits for c in costs),
        "iteration_cache_misses": sum(c.iteration_misses for c in costs),
        "collectives_simulated": sum(c.timer.simulated for c in costs),
        "replica_links_shared": _links_shared(plans, system) if total > 1 else False})
    return result
