"""Simulate one GEMM on an accelerator and compare it with its roofline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import simpy

from ..hw.accelerator import Accelerator
from ..hw.config import AcceleratorConfig
from ..mapping.gemm import GemmPlan, GemmSpec, peak_macs_per_s, plan_gemm
from ..metrics.recorder import Recorder


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
    """Figures of one simulated GEMM; ``steps`` holds one row per tile step."""

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
            "time_s": self.time_s, "core_cycles": self.core_cycles, "macs": self.macs,
            "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
            "dequant_cycles": self.dequant_cycles,
            "dram_read_bytes": self.dram_read_bytes, "dram_write_bytes": self.dram_write_bytes,
            "sram_read_bytes": self.sram_read_bytes, "sram_write_bytes": self.sram_write_bytes,
            "memory_time_s": self.memory_time_s, "compute_time_s": self.compute_time_s,
            "roofline_time_s": self.roofline_time_s, "bound": self.bound,
            "utilization": self.utilization,
            "tiling": {"tm": t.tm, "tn": t.tn, "tk": t.tk, "order": t.order.value,
                       "dataflow": t.dataflow.value, "tile_steps": len(self.steps)},
        }


def simulate_gemm(spec: GemmSpec, design: AcceleratorConfig, plan: GemmPlan | None = None) -> GemmResult:
    """Simulate ``spec`` on ``design`` from idle to drained.

    Parameters
    ----------
    spec:
        The GEMM (sizes and operand precisions).
    design:
        The accelerator.
    plan:
        A mapping to use instead of the mapper's choice.

    Returns
    -------
    GemmResult
        Time (s), cycles, bytes and the per-tile-step DataFrame.
    """
    plan = plan if plan is not None else plan_gemm(spec, design)
    env = simpy.Environment()
    recorder = Recorder()
    accel = Accelerator(env, design, recorder)
    done = accel.start_gemm(0, plan)
    env.run(until=done)
    steps = recorder.steps_frame()
    time_s = env.now * 1e-9
    core_cycles = round(env.now / design.cycle_ns)
    compute_cycles = max(t.busy_cycles for t in accel.tiles)
    gbuf = accel.global_buffer
    return GemmResult(
        spec=spec, design=design.name, time_s=time_s, core_cycles=core_cycles, macs=spec.macs,
        compute_cycles=compute_cycles, stall_cycles=max(0, core_cycles - compute_cycles),
        dequant_cycles=max(t.dequant_busy_cycles for t in accel.tiles),
        dram_read_bytes=accel.dram.read_bytes, dram_write_bytes=accel.dram.write_bytes,
        sram_read_bytes=int(steps["sram_read_bytes"].sum()) + (gbuf.read_bytes if gbuf else 0),
        sram_write_bytes=int(steps["sram_write_bytes"].sum()) + (gbuf.write_bytes if gbuf else 0),
        roofline=gemm_roofline(spec, design), plan=plan, steps=steps, config=design)
