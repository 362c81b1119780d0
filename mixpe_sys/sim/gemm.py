"""Simulate one GEMM on an accelerator and compare it with its roofline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import simpy

from ..energy import EnergyBreakdown
from ..hw.accelerator import Accelerator
from ..hw.config import AcceleratorConfig
from ..mapping.gemm import GemmPlan, GemmSpec, peak_macs_per_s, plan_gemm
from ..metrics.recorder import Recorder
from ..workload.quant import NumberFormat


@dataclass(frozen=True)
class Roofline:
    """Lower bounds on an operation's time (s) from DRAM bandwidth and peak compute."""

    memory_time_s: float
    compute_time_s: float

    @property
    def roofline_time_s(self) -> float:
        """The larger of the two bounds (s)."""
        return max(self.memory_time_s, self.compute_time_s)

    @property
    def bound(self) -> str:
        """``"memory"`` or ``"compute"``, whichever bound is larger."""
        return "memory" if self.memory_time_s >= self.compute_time_s else "compute"


def gemm_roofline(spec: GemmSpec, accel: AcceleratorConfig) -> Roofline:
    """Compulsory DRAM bytes over peak bandwidth, and MACs over the peak MAC rate."""
    reads, writes = spec.compulsory_bytes()
    return Roofline(memory_time_s=(reads + writes) / accel.dram.bandwidth_bytes_per_s,
                    compute_time_s=spec.macs / peak_macs_per_s(spec, accel))


@dataclass(frozen=True)
class GemmResult:
    """Figures of one simulated GEMM; ``steps`` holds one row per tile step.

    ``time_s`` includes the design's launch cost of one kernel under the
    run's launch mode (``launch``; see :mod:`mixpe_sys.hw.launch`), as an op
    of a model run does, and so do the cycle counts and the energy (the
    launch cost is idle time); ``device_time_s`` is the time from the first
    load to the last write-back alone.
    """

    spec: GemmSpec
    design: str
    time_s: float
    core_cycles: int
    macs: int
    compute_cycles: int
    stall_cycles: int
    dequant_cycles: int
    dram_read_bytes: int
    dram_write_bytes: int
    sram_read_bytes: int
    sram_write_bytes: int
    roofline: Roofline
    plan: GemmPlan = field(repr=False)
    steps: pd.DataFrame = field(repr=False)
    config: AcceleratorConfig = field(repr=False)
    energy: EnergyBreakdown = field(default_factory=EnergyBreakdown)
    device_time_s: float = 0.0
    launch: str = "graph"

    @property
    def energy_j(self) -> float:
        """Total energy (J)."""
        return self.energy.energy_j

    @property
    def memory_time_s(self) -> float:
        return self.roofline.memory_time_s

    @property
    def compute_time_s(self) -> float:
        return self.roofline.compute_time_s

    @property
    def roofline_time_s(self) -> float:
        return self.roofline.roofline_time_s

    @property
    def bound(self) -> str:
        return self.roofline.bound

    @property
    def utilization(self) -> float:
        """Achieved fraction of the peak MAC rate."""
        return self.compute_time_s / self.time_s if self.time_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON figures (units in the names)."""
        t = self.plan.tiling
        return {
            "design": self.design, "m": self.spec.m, "n": self.spec.n, "k": self.spec.k,
            "batch": self.spec.batch, "weight_bits": self.spec.weight_bits,
            "activation_bits": self.spec.activation_bits, "group_size": self.spec.group_size,
            "time_s": self.time_s, "device_time_s": self.device_time_s, "launch": self.launch,
            "core_cycles": self.core_cycles, "macs": self.macs,
            "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
            "dequant_cycles": self.dequant_cycles,
            "dram_read_bytes": self.dram_read_bytes, "dram_write_bytes": self.dram_write_bytes,
            "sram_read_bytes": self.sram_read_bytes, "sram_write_bytes": self.sram_write_bytes,
            "memory_time_s": self.memory_time_s, "compute_time_s": self.compute_time_s,
            "roofline_time_s": self.roofline_time_s, "bound": self.bound,
            "utilization": self.utilization,
            "energy_j": self.energy_j, "energy_breakdown_j": self.energy.to_dict(),
            "tiling": {"tm": t.tm, "tn": t.tn, "tk": t.tk, "order": t.order.value,
                       "dataflow": t.dataflow.value, "tile_steps": len(self.steps)},
        }


def simulate_gemm(spec: GemmSpec, design: AcceleratorConfig, plan: GemmPlan | None = None,
                  launch: str = "graph") -> GemmResult:
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
        ``graph`` or ``eager``: which launch cost of the design's ``launch`` block ``time_s`` includes.

    Returns
    -------
    GemmResult
        Time (s), cycles, bytes and the per-tile-step DataFrame.
    """
    from .launch import with_launch  # both build on this module
    from .op_sim import cost_from_run
    from ..hw.launch import launch_mode

    mode = launch_mode(launch)

    plan = plan if plan is not None else plan_gemm(spec, design)
    run = run_plan(plan, design)
    steps = run.recorder.steps_frame()
    cost = cost_from_run(run, design, macs=spec.macs, weight_bits=spec.weight_bits,
                         activation_bits=spec.activation_bits,
                         activation_fp=spec.activation_format is NumberFormat.FP)
    cost = with_launch(cost, design, mode)
    return GemmResult(
        spec=spec, design=design.name, time_s=cost.time_ns * 1e-9, core_cycles=cost.core_cycles, macs=spec.macs,
        compute_cycles=run.compute_cycles, stall_cycles=cost.stall_cycles, dequant_cycles=run.dequant_cycles,
        dram_read_bytes=run.dram_read_bytes, dram_write_bytes=run.dram_write_bytes,
        sram_read_bytes=run.sram_read_bytes, sram_write_bytes=run.sram_write_bytes,
        roofline=gemm_roofline(spec, design), plan=plan, steps=steps, config=design,
        energy=EnergyBreakdown(cost.static_j, cost.dram_j, cost.buffer_j, cost.core_j),
        device_time_s=run.time_ns * 1e-9, launch=mode.value)


@dataclass(frozen=True)
class PlanRun:
    """Raw outcome of running one mapped operation from idle to drained."""

    time_ns: float
    core_cycles: int
    compute_cycles: int  # busy cycles of the busiest tile
    stall_cycles: int  # core cycles - compute cycles
    dequant_cycles: int  # busy cycles of the busiest dequant unit (post-GEMM scaling or in-loop conversion)
    dequant_stall_ns: float  # longest total wait of a tile's array on its dequant unit
    dram_read_bytes: int
    dram_write_bytes: int
    sram_read_bytes: int
    sram_write_bytes: int
    recorder: Recorder = field(repr=False)
    # per-buffer split of the SRAM bytes (the output buffer has the rest), for the energy model
    w_sram_read_bytes: int = 0
    a_sram_read_bytes: int = 0
    w_sram_write_bytes: int = 0
    a_sram_write_bytes: int = 0
    gbuf_read_bytes: int = 0
    gbuf_write_bytes: int = 0
    dequant_elements: int = 0  # elements scaled post-GEMM or weights converted in-loop, all tiles


def run_plan(plan: GemmPlan, design: AcceleratorConfig, op_id: int = 0, *, record_steps: bool = True) -> PlanRun:
    """Run ``plan`` on a fresh accelerator (every unit idle, buffers empty) until it drains.

    With ``record_steps=False`` no per-step rows are kept (``recorder.steps``
    stays empty); every total is the same.
    """
    env = simpy.Environment()
    recorder = Recorder(steps=record_steps)
    accel = Accelerator(env, design, recorder)
    env.run(until=accel.start_gemm(op_id, plan))
    core_cycles = round(env.now / design.cycle_ns)
    compute_cycles = max(t.busy_cycles for t in accel.tiles)
    stalls = [t.dequant_stall_ns for t in accel.tiles]
    # in-loop conversion runs beside the array inside its compute cycles: count it as dequant work
    convert = [0] * len(accel.tiles)
    sram_r = sram_w = w_r = a_r = w_w = a_w = elems = 0
    for t, s in plan.iter_steps():
        convert[t] += s.convert_cycles
        stalls[t] += s.convert_stall_cycles * design.cycle_ns
        sram_r += s.sram_read_bytes
        sram_w += s.sram_write_bytes
        w_r += s.w_sram_read_bytes
        a_r += s.a_sram_read_bytes
        a_w += s.a_bytes
        w_w += s.w_bytes if s.w_key is not None else 0
        elems += s.dequant_elements
    gbuf = accel.global_buffer
    g_r = g_w = 0
    if gbuf is not None:
        g_r, g_w = gbuf.read_bytes, gbuf.write_bytes
        sram_r += g_r
        sram_w += g_w
    return PlanRun(time_ns=env.now, core_cycles=core_cycles, compute_cycles=compute_cycles,
                   stall_cycles=max(0, core_cycles - compute_cycles),
                   dequant_cycles=max(t.dequant_busy_cycles + c for t, c in zip(accel.tiles, convert)),
                   dequant_stall_ns=max(stalls, default=0.0),
                   dram_read_bytes=accel.dram.read_bytes, dram_write_bytes=accel.dram.write_bytes,
                   sram_read_bytes=sram_r, sram_write_bytes=sram_w, recorder=recorder,
                   w_sram_read_bytes=w_r, a_sram_read_bytes=a_r, w_sram_write_bytes=w_w, a_sram_write_bytes=a_w,
                   gbuf_read_bytes=g_r, gbuf_write_bytes=g_w, dequant_elements=elems)
