"""Simulate a model's inference (prefill + decode) on one replica of a system of chips.

The batch's sequences are split into micro-batches (whole sequences,
``SystemConfig.microbatches``, at most the batch). Each micro-batch makes
one pass for its prefill and one per decode step; a decode pass starts when
the micro-batch's previous pass has left the last stage (it needs that
token). Passes of different micro-batches overlap in the pipeline. Costs
per pass come from :class:`~.stage_cost.RunStageCosts` (the chip's cost
cache) and the pipeline from :mod:`.pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..hw.precision import run_quant
from ..sim.engine import CostCache
from ..workload.models import ModelSpec
from ..workload.ops import Phase
from ..workload.quant import QuantScheme
from .collectives import CollectiveTimer
from .parallel import ReplicaPlan, plan_replica
from .pipeline import Pass, PipelineRun, collectives_isolated, pipeline_time_ns
from .presets import System
from .stage_cost import RunStageCosts

CHIP_COLUMNS = ("chip", "stage", "tp_rank", "layers", "compute_s", "collective_s", "idle_s", "collective_bytes",
                "activation_bytes", "weight_bytes", "kv_bytes", "memory_bytes", "dram_capacity_bytes")
COLLECTIVE_COLUMNS = ("stage", "phase", "kind", "count", "bytes_per_chip", "time_s")
PASS_COLUMNS = ("pass", "phase", "step", "microbatch", "stage", "start_s", "end_s")


@dataclass(frozen=True)
class SystemResult:
    """A run on a system: per-chip, per-collective, per-pass and per-op tables and the headline figures.

    ``chips``: one row per chip of the replica (compute, collective and idle time in s, bytes it sent in
    collectives and as activations, weight / KV / total memory bytes and its DRAM capacity);
    ``collectives``: per stage, phase and kind, the count, bytes sent per chip and wall time (s);
    ``passes``: when each micro-batch step held each stage (s); ``ops``: per stage, phase and op name, the
    op's time on one chip of the stage over the run (s).
    """

    model: str
    system: str
    design: str
    tp: int
    pp: int
    microbatches: int
    batch: int
    prompt_tokens: int
    generate_tokens: int
    prefill_time_s: float
    total_time_s: float
    chips: pd.DataFrame = field(repr=False)
    collectives: pd.DataFrame = field(repr=False)
    passes: pd.DataFrame = field(repr=False)
    ops: pd.DataFrame = field(repr=False)
    energy_j: float = 0.0
    simulated_ops: int = 0
    live_collectives: bool = False

    @property
    def decode_time_s(self) -> float:
        """Time from the last first token to the end (s)."""
        return self.total_time_s - self.prefill_time_s

    @property
    def collective_time_s(self) -> float:
        """Most time any chip spent in collectives (s)."""
        return float(self.chips["collective_s"].max())

    @property
    def collective_bytes(self) -> int:
        """Bytes all chips sent in collectives."""
        return int(round(self.chips["collective_bytes"].sum()))

    def to_dict(self) -> dict[str, Any]:
        """Headline figures (JSON-ready)."""
        steps = self.generate_tokens - 1
        return {"model": self.model, "system": self.system, "design": self.design, "tp": self.tp, "pp": self.pp,
                "chips": self.tp * self.pp, "microbatches": self.microbatches, "batch": self.batch,
                "prompt_tokens": self.prompt_tokens, "generate_tokens": self.generate_tokens,
                "prefill_time_s": self.prefill_time_s, "decode_time_s": self.decode_time_s,
                "total_time_s": self.total_time_s,
                "time_per_output_token_s": self.decode_time_s / steps if steps > 0 else None,
                "tokens_per_s": self.batch * self.generate_tokens / self.total_time_s if self.total_time_s else None,
                "collective_time_s": self.collective_time_s, "collective_bytes": self.collective_bytes,
                "memory_per_chip_bytes": int(self.chips["memory_bytes"].max()),
                "dram_capacity_bytes": int(self.chips["dram_capacity_bytes"].iloc[0]),
                "energy_j": self.energy_j, "simulated_ops": self.simulated_ops,
                "live_collectives": self.live_collectives}


def _sizes(batch: int, parts: int) -> list[int]:
    base, extra = divmod(batch, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def build_passes(plan: ReplicaPlan, costs: RunStageCosts, *, batch: int, prompt: int, generate: int,
                 microbatches: int) -> list[Pass]:
    """Prefill and decode passes of every micro-batch, in start order."""
    sizes = _sizes(batch, min(batch, microbatches))
    passes: list[Pass] = []
    last: dict[int, int] = {}
    for step in range(max(1, generate)):
        phase = Phase.PREFILL if step == 0 else Phase.DECODE
        q, kv = (prompt, prompt) if step == 0 else (1, prompt + step)
        for m, b in enumerate(sizes):
            stages = tuple(costs.stage_pass(st, b, q, kv, phase) for st in plan.stages)
            passes.append(Pass(phase.value, step, m, stages, last.get(m, -1)))
            last[m] = len(passes) - 1
    return passes


def simulate_system(model: ModelSpec, system: System, *, batch: int = 1, prompt: int = 512, generate: int = 128,
                    quant: QuantScheme | None = None, reuse: bool = True, workers: int = 1,
                    cache: CostCache | None = None, cache_dir=None, fast_forward: bool = True) -> SystemResult:
    """Simulate ``model`` on one replica (``tp x pp`` chips) of ``system``.

    Parameters
    ----------
    model, system:
        Model shape and the system (its ``tp``, ``pp`` and ``microbatches`` apply).
    batch, prompt, generate:
        Sequences, prompt tokens and generated tokens per sequence.
    quant:
        Quantization scheme (default: the chip design's).
    reuse:
        Reuse collective times measured alone where no link is shared (False runs every collective
        on the shared links; same results then).
    workers:
        Processes simulating the distinct ops first (same results).
    cache:
        The chip's op cost cache, to share between runs.
    cache_dir:
        Persistent op-cost store of a new cache: None the default directory, a path, False none.
    fast_forward:
        Skip whole repeated periods of each GEMM's steady state (same results, bit for bit).

    Raises
    ------
    FitError
        When a chip's weights plus the batch's KV cache exceed its DRAM.
    """
    chip = system.chip
    q = run_quant(chip, quant)
    plan = plan_replica(model, system.config)
    plan.check_fit(q, chip.dram.capacity_bytes, batch * (prompt + generate - 1),
                   f"batch {batch} x {prompt + generate - 1} tokens")
    own = cache is None
    cache = CostCache(chip, workers=workers, cache_dir=cache_dir, fast_forward=fast_forward) if own else cache
    before = cache.simulated
    costs = RunStageCosts(plan.stages, plan.tp, chip, q, cache)
    try:
        if cache.workers > 1:
            ops = []
            for st in plan.stages:
                for b in set(_sizes(batch, min(batch, system.config.pipeline_microbatches))):
                    for step in range(max(1, generate)):
                        phase = Phase.PREFILL if step == 0 else Phase.DECODE
                        layer, head = costs.ops(st, b, *((prompt, prompt) if step == 0 else (1, prompt + step)),
                                                phase)
                        ops += layer + head
            cache.prefetch(ops)
        passes = build_passes(plan, costs, batch=batch, prompt=prompt, generate=generate,
                              microbatches=system.config.pipeline_microbatches)
    finally:
        if own:
            cache.close()
    timer = CollectiveTimer(system.graph, system.config.collective)
    live = not (reuse and collectives_isolated(plan, system.graph, system.config.collective))
    total_ns, run = pipeline_time_ns(passes, plan, system.graph, timer, live)
    return _result(model, system, plan, q, run, passes, total_ns, batch=batch, prompt=prompt, generate=generate,
                   simulated=cache.simulated - before, live=live)


def _result(model, system: System, plan: ReplicaPlan, q: QuantScheme, run: PipelineRun, passes, total_ns: float,
            *, batch: int, prompt: int, generate: int, simulated: int, live: bool) -> SystemResult:
    cap = system.chip.dram.capacity_bytes
    kv_tokens = batch * (prompt + generate - 1)
    chips, colls, ops = [], [], {}
    for st, tot in zip(plan.stages, run.totals):
        weights = plan.weight_bytes_per_chip(st, q)
        kv = round(kv_tokens * st.kv_bytes_per_token(q))
        for rank, chip in enumerate(st.chips):
            chips.append((chip, st.index, rank, st.num_layers, tot.compute_ns * 1e-9, tot.collective_ns * 1e-9,
                          max(0.0, total_ns - tot.compute_ns - tot.collective_ns) * 1e-9, tot.collective_bytes,
                          tot.activation_bytes, weights, kv, weights + kv, cap))
        for (phase, kind), (count, nbytes, took) in sorted(tot.collectives.items()):
            colls.append((st.index, phase, kind, count, nbytes, took * 1e-9))
    energy = 0.0
    for p in passes:
        for st, sp in zip(plan.stages, p.stages):
            energy += sp.energy_j * len(st.chips)
            for name, t in sp.op_times_ns:
                key = (st.index, p.phase, name)
                ops[key] = ops.get(key, 0.0) + t * 1e-9
    rec = pd.DataFrame(run.records, columns=["pass", "phase", "step", "microbatch", "stage", "start_ns", "end_ns"])
    rec["start_s"], rec["end_s"] = rec.pop("start_ns") * 1e-9, rec.pop("end_ns") * 1e-9
    prefill_end = rec.loc[(rec["phase"] == Phase.PREFILL.value) & (rec["stage"] == plan.pp - 1), "end_s"].max()
    return SystemResult(model=model.name, system=system.name, design=system.chip.name, tp=plan.tp, pp=plan.pp,
                        microbatches=min(batch, system.config.pipeline_microbatches), batch=batch,
                        prompt_tokens=prompt, generate_tokens=generate, prefill_time_s=float(prefill_end),
                        total_time_s=total_ns * 1e-9, chips=pd.DataFrame(chips, columns=list(CHIP_COLUMNS)),
                        collectives=pd.DataFrame(colls, columns=list(COLLECTIVE_COLUMNS)),
                        passes=rec[list(PASS_COLUMNS)],
                        ops=pd.DataFrame([(s, ph, n, t) for (s, ph, n), t in ops.items()],
                                         columns=["stage", "phase", "name", "time_s"]),
                        energy_j=energy, simulated_ops=simulated, live_collectives=live)
