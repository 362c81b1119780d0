"""The record types every component and report shares, each counter declared once.

- :class:`StepCost`: what one tile step costs the tile's units (cycles, array-side SRAM bytes).
- :class:`StepRecord`: one tile step's timeline in a simulation (with its :class:`StepCost`).
- :class:`OpCost`: one op's totals; its fields are the op-record columns of every report
  (:func:`op_columns`), a field ending in ``_ns`` becoming a column in seconds (``_s``).
- :class:`Bound`: the roofline's class of an op.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, NamedTuple


class Bound(str, enum.Enum):
    """Which roofline term is larger: DRAM bytes over peak bandwidth, or work over peak compute."""

    MEMORY = "memory"
    COMPUTE = "compute"


class StepCost(NamedTuple):
    """What one tile step costs the tile's own units."""

    compute_cycles: int  # the array (or vector unit) busy: PE rule, SRAM read ports and in-loop conversion
    array_cycles: int  # the PE rule alone (sum of the folds' cycles)
    folds: int  # passes of the array over a stationary block
    activation_port_cycles: int  # array-side port of the activation buffer
    weight_port_cycles: int  # array-side port of the weight buffer
    output_port_cycles: int  # array-side port of the output buffer (partial-sum read-modify-write)
    dequant_cycles: int  # post-GEMM dequant unit (0 if none)
    convert_cycles: int  # in-loop converter, overlapped with the array (inside compute_cycles)
    convert_stall_cycles: int  # array waiting on the in-loop converter (inside compute_cycles)
    dequant_elements: int  # elements scaled post-GEMM, or weights converted in-loop
    vector_cycles: int  # vector unit
    vector_ops: int  # vector-unit element operations
    a_sram_read_bytes: int  # activation-buffer bytes read by the array or vector unit
    w_sram_read_bytes: int  # weight-buffer bytes read by the array
    o_sram_read_bytes: int  # output-buffer partial sums read back
    o_sram_write_bytes: int  # output-buffer bytes written by the array or vector unit


@dataclass(frozen=True, slots=True)
class StepRecord:
    """Timeline of one tile step (times in ns from the start of its operation) and its cost."""

    op_id: int
    tile: int
    step: int
    inst: int
    i: int
    j: int
    kk: int
    m: int
    n: int
    k: int
    macs: int
    load_start_ns: float
    load_end_ns: float
    compute_start_ns: float
    compute_end_ns: float
    done_ns: float  # dequantized and (when last along K) written back
    dequant_stall_ns: float  # array waited for the dequant unit
    dram_read_bytes: int
    dram_write_bytes: int
    cost: StepCost

    def row(self) -> dict[str, Any]:
        """The record as one flat row (the cost's fields inline)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cost"}
        out.update(self.cost._asdict())
        return out


@dataclass(frozen=True, slots=True)
class OpCost:
    """What one op costs on a design, every unit idle at its start and end.

    Times are in ns (the simulation's unit); the op-record columns give them in s.
    """

    time_ns: float  # device time plus the design's per-op overhead
    device_time_ns: float  # first load to last write-back
    cycles: int  # core cycles of time_ns
    compute_cycles: int  # busy cycles of the busiest tile's array or vector unit
    stall_cycles: int  # cycles - compute_cycles
    dequant_cycles: int  # busy cycles of the busiest dequant unit (post-GEMM scaling or in-loop conversion)
    dequant_stall_ns: float  # longest total wait of a tile's array on its dequant unit
    macs: int
    tile_steps: int
    dram_read_bytes: int
    dram_write_bytes: int
    sram_read_bytes: int  # every buffer, array side and DMA side, global buffer included
    sram_write_bytes: int
    w_sram_read_bytes: int  # weight-buffer reads by the array
    a_sram_read_bytes: int  # activation-buffer reads by the array or vector unit
    w_sram_write_bytes: int  # weight-buffer fills
    a_sram_write_bytes: int  # activation-buffer fills
    gbuf_read_bytes: int
    gbuf_write_bytes: int
    dequant_elements: int  # elements scaled post-GEMM, or weights converted in-loop
    vector_ops: int  # vector-unit element operations
    weight_bits: int
    activation_bits: int
    activation_fp: bool
    memory_time_ns: float  # roofline: compulsory DRAM bytes / peak bandwidth
    compute_time_ns: float  # roofline: MACs / peak MAC rate, or element ops / vector rate
    roofline_bound: Bound
    utilization: float  # compute_time_ns / time_ns: achieved fraction of the peak rate
    bottleneck: str  # the busiest unit class (see unit_classes)
    bottleneck_utilization: float  # its busy time / device time
    static_energy_j: float
    dram_energy_j: float
    buffer_energy_j: float
    core_energy_j: float
    energy_j: float  # the sum of the four parts
    unit_busy_ns: tuple = ()  # ((unit class, busy ns), ...) busiest first; expanded by the utilization report


def unit_classes(busy_ns: dict[str, float]) -> dict[str, float]:
    """Busy time per class of unit: a tile's units as ``tile.<unit>`` and the DRAM channels as
    ``dram``, each the busiest instance (the one that limits); links and the global buffer by name.
    Busiest first."""
    out: dict[str, float] = {}
    for name, busy in busy_ns.items():
        head, _, rest = name.partition(".")
        if head.startswith("tile") and head[4:].isdigit():
            name = "tile." + rest
        elif head == "dram":
            name = "dram"
        if busy > out.get(name, -1.0):
            out[name] = busy
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


#: Fields of an op record that say which op it is (a model run's rows start with these).
OP_IDENTITY_COLUMNS = ("op_index", "phase", "step", "layer", "name", "kind", "m", "n", "k", "batch", "elements",
                       "start_s", "end_s")


def _column(name: str) -> str:
    return name[:-3] + "_s" if name.endswith("_ns") else name


_COST_FIELDS = tuple(f.name for f in dataclasses.fields(OpCost) if f.name != "unit_busy_ns")
#: The cost columns of an op record, in OpCost's field order (``*_ns`` fields as ``*_s``; the per-unit
#: busy times are the utilization report's, not columns).
COST_COLUMNS = tuple(_column(f) for f in _COST_FIELDS)
_NS_FIELDS = tuple(f.endswith("_ns") for f in _COST_FIELDS)


def cost_row(cost: OpCost) -> tuple:
    """The cost's values in :data:`COST_COLUMNS` order (ns converted to s, enums to their values)."""
    values = [getattr(cost, f) for f in _COST_FIELDS]
    return tuple(v * 1e-9 if ns else (v.value if isinstance(v, enum.Enum) else v)
                 for v, ns in zip(values, _NS_FIELDS))


def cost_dict(cost: OpCost) -> dict[str, Any]:
    """The cost as ``{column: value}`` (see :func:`cost_row`)."""
    return dict(zip(COST_COLUMNS, cost_row(cost)))
