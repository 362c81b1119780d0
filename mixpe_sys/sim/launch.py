"""Add a run's kernel launch cost to an op's device cost (see :mod:`mixpe_sys.hw.launch`)."""

from __future__ import annotations

import dataclasses

from ..energy import op_energy
from ..hw.config import AcceleratorConfig
from ..hw.launch import LaunchMode, kernel_overhead_ns
from ..metrics.records import OpCost


def with_launch(cost: OpCost, design: AcceleratorConfig, mode: LaunchMode | str) -> OpCost:
    """``cost`` (one kernel's device cost) plus the fixed cost of launching it under ``mode``.

    The launch cost is idle time: it adds to the time, the cycles and stall
    cycles, and the energy that grows with time (static power and leakage),
    never to the compute cycles, the counted work or the device time.
    """
    overhead = kernel_overhead_ns(design.launch, mode)
    if overhead == 0.0:
        return cost
    # the energy of the same design idle for the launch cost: a record with no work at all
    idle_record = dataclasses.replace(
        cost, time_ns=overhead, device_time_ns=0.0, macs=0, dram_read_bytes=0, dram_write_bytes=0,
        sram_read_bytes=0, sram_write_bytes=0, w_sram_read_bytes=0, a_sram_read_bytes=0, w_sram_write_bytes=0,
        a_sram_write_bytes=0, gbuf_read_bytes=0, gbuf_write_bytes=0, dequant_elements=0, vector_ops=0,
        compute_cycles=0)
    idle = op_energy(idle_record, design)
    time_ns = cost.time_ns + overhead
    cycles = round(time_ns / design.cycle_ns)
    return dataclasses.replace(
        cost, time_ns=time_ns, cycles=cycles, stall_cycles=max(0, cycles - cost.compute_cycles),
        utilization=cost.compute_time_ns / time_ns,
        static_energy_j=cost.static_energy_j + idle.static_j, dram_energy_j=cost.dram_energy_j + idle.dram_j,
        buffer_energy_j=cost.buffer_energy_j + idle.buffer_j, core_energy_j=cost.core_energy_j + idle.core_j,
        energy_j=cost.energy_j + idle.energy_j)
