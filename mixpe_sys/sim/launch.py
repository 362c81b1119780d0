"""Add a run's kernel launch cost to an op's device cost (see :mod:`mixpe_sys.hw.launch`)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from ..energy import op_energy
from ..hw.config import AcceleratorConfig
from ..hw.launch import LaunchMode, kernel_overhead_ns

C = TypeVar("C")


def with_launch(cost: C, design: AcceleratorConfig, mode: LaunchMode | str) -> C:
    """``cost`` (an :class:`~mixpe_sys.sim.op_sim.OpCost`: one kernel's device cost) plus the fixed cost
    of launching it under ``mode``.

    The launch cost is idle time: it adds to the time, the core and stall
    cycles, and the static and leakage energy (the energy model's terms that
    grow with time), never to the compute cycles or the counted work.
    """
    overhead = kernel_overhead_ns(design.launch, mode)
    if overhead == 0.0:
        return cost
    # the same record with no work at all, lasting the launch cost: its energy is the idle energy
    zero = {f.name: type(getattr(cost, f.name))() for f in dataclasses.fields(cost)}
    idle = op_energy(dataclasses.replace(cost, **{**zero, "time_ns": overhead}), design)
    time_ns = cost.time_ns + overhead
    return dataclasses.replace(
        cost, time_ns=time_ns, core_cycles=round(time_ns / design.cycle_ns),
        stall_cycles=cost.stall_cycles + round(overhead / design.cycle_ns),
        static_j=cost.static_j + idle.static_j, dram_j=cost.dram_j + idle.dram_j,
        buffer_j=cost.buffer_j + idle.buffer_j, core_j=cost.core_j + idle.core_j,
        energy_j=cost.energy_j + idle.energy_j)
