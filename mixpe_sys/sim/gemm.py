"""Simulate one GEMM on an accelerator and compare it with its roofline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..energy import EnergyBreakdown
from ..hw.config import AcceleratorConfig
from ..hw.launch import LaunchMode, launch_mode
from ..hw.plan import GemmPlan
from ..mapping.gemm import peak_macs_per_s, plan_gemm
from ..metrics.records import OpCost, cost_dict
from ..report import utilization_frame
from ..workload.gemm_spec import GemmSpec
from ..workload.quant import NumberFormat
from .launch import with_launch
from .plan_run import run_plan


@dataclass(frozen=True)
class Roofline:
    """Lower bounds on an operation's time (s) from DRAM bandwidth and peak compute."""

    memory_time_s: float
    compute_time_s: float

    @property
    def roofline_time_s(self) -> float:
        """The larger of the two bounds (s)."""
        return max(self.memory_time_s, self.compute_time_s)


def gemm_roofline(spec: GemmSpec, accel: AcceleratorConfig) -> Roofline:
    """Compulsory DRAM bytes over peak bandwidth, and MACs over the peak MAC rate."""
    reads, writes = spec.compulsory_bytes()
    return Roofline(memory_time_s=(reads + writes) / accel.dram.bandwidth_bytes_per_s,
                    compute_time_s=spec.macs / peak_macs_per_s(spec, accel))


@dataclass(frozen=True)
class GemmResult:
    """One simulated GEMM: its :class:`OpCost` (every op-record column is an attribute, e.g.
    ``time_s``, ``cycles``, ``bottleneck``), the per-unit utilization and one row per tile step.

    ``time_s`` includes the design's launch cost of one kernel under the
    run's launch mode (``launch``; see :mod:`mixpe_sys.hw.launch`), as an op
    of a model run does, and so do the cycle counts and the energy (the
    launch cost is idle time); ``device_time_s`` is the time from the first
    load to the last write-back alone.
    """

    spec: GemmSpec
    design: str
    cost: OpCost = field(repr=False)
    roofline: Roofline
    plan: GemmPlan = field(repr=False)
    steps: pd.DataFrame = field(repr=False)
    units: pd.DataFrame = field(repr=False)  # unit class, busy_s, utilization (busiest first)
    config: AcceleratorConfig = field(repr=False)
    launch: str = "graph"  # how the kernel was launched (graph or eager)

    figures: dict = field(init=False, repr=False, compare=False)  # the cost's op-record columns

    def __post_init__(self) -> None:
        object.__setattr__(self, "figures", cost_dict(self.cost))

    def __getattr__(self, name: str) -> Any:
        figures = self.__dict__.get("figures", {})
        if name in figures:
            return figures[name]
        raise AttributeError(name)

    @property
    def core_cycles(self) -> int:
        """Core cycles of ``time_s``."""
        return self.cost.cycles

    @property
    def energy(self) -> EnergyBreakdown:
        """The energy's four parts (J)."""
        c = self.cost
        return EnergyBreakdown(c.static_energy_j, c.dram_energy_j, c.buffer_energy_j, c.core_energy_j)

    @property
    def roofline_time_s(self) -> float:
        return self.roofline.roofline_time_s

    @property
    def memory_time_s(self) -> float:
        return self.roofline.memory_time_s

    @property
    def compute_time_s(self) -> float:
        return self.roofline.compute_time_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON figures (units in the names)."""
        t = self.plan.tiling
        out = {"design": self.design, "m": self.spec.m, "n": self.spec.n, "k": self.spec.k,
               "batch": self.spec.batch, "group_size": self.spec.group_size, "launch": self.launch}
        out.update(self.figures)
        out.update({"core_cycles": self.cost.cycles, "roofline_time_s": self.roofline_time_s,
                    "energy_breakdown_j": self.energy.to_dict(),
                    "units": {r.unit: r.utilization for r in self.units.itertuples()},
                    "tiling": {"tm": t.tm, "tn": t.tn, "tk": t.tk, "order": t.order.value,
                               "dataflow": t.dataflow.value, "tiles": t.tiles or self.config.num_tiles,
                               "split_k": t.split_k,
                               "tile_steps": self.cost.tile_steps,
                               "estimated_time_s": t.estimated_time_s}})
        return out


def simulate_gemm(spec: GemmSpec, design: AcceleratorConfig, plan: GemmPlan | None = None,
                  launch: str = "graph", fast_forward: bool = True) -> GemmResult:
    """Simulate ``spec`` on ``design`` from idle to drained.

    Parameters
    ----------
    spec:
        The GEMM (sizes and operand precisions).
    design:
        The accelerator.
    plan:
        A mapping to use instead of the mapper's choice.
    launch:
        How the kernel is launched: ``graph`` (CUDA-graph replay, default) or ``eager`` (see
        :mod:`mixpe_sys.hw.launch`; designs without launch costs pay none).
    launch:
        ``graph`` or ``eager``: which launch cost of the design's ``launch`` block ``time_s`` includes.
    fast_forward:
        Skip whole repeated periods of each GEMM's steady state (same results, bit for bit).

    Returns
    -------
    GemmResult
        Time (s), cycles, bytes, the bottleneck unit, the per-unit utilization and the
        per-tile-step DataFrame.
    """
    plan = plan if plan is not None else plan_gemm(spec, design)
    roof = gemm_roofline(spec, design)
    run = run_plan(plan, design, macs=spec.macs, memory_time_ns=roof.memory_time_s * 1e9,
                   compute_time_ns=roof.compute_time_s * 1e9, weight_bits=spec.weight_bits,
                   activation_bits=spec.activation_bits, activation_fp=spec.activation_format is NumberFormat.FP,
                   fast_forward=fast_forward)
    mode = launch_mode(launch)
    units = utilization_frame(dict(run.cost.unit_busy_ns), run.cost.device_time_ns)
    return GemmResult(spec=spec, design=design.name, cost=with_launch(run.cost, design, mode), roofline=roof,
                      plan=plan, steps=run.recorder.steps_frame(), units=units, config=design, launch=mode.value)
