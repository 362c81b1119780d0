"""Energy of an operation from its counters: static, DRAM, buffer and core parts.

Pure functions of an op's counters (:class:`~mixpe_sys.sim.op_sim.OpCost`:
time, MACs, busy cycles, SRAM bytes per buffer, DRAM bytes, dequantized
elements, vector operations) and the design. The constants live in
``mixpe_sys/data/energy_area.yaml``, each with its source; a PE type that
file does not list states its own figures on its class (see
:func:`pe_figures`).

Parts (joules):

- ``static``: DRAM background power x time, plus SRAM leakage x time
  (simulated accounting only; the MixPE authors count no SRAM leakage).
- ``dram``: bits read and written x pJ/bit of the DRAM kind.
- ``buffer``: SRAM bits read and written x pJ/bit of each buffer (by bank
  size), plus on-chip link traversals.
- ``core``: PE dynamic energy, PE leakage x time, dequantization/conversion
  and vector-unit operations.

Two accountings (``AcceleratorConfig.energy_accounting``):

- ``simulated``: MACs x energy per MAC of the PE type at the operand widths,
  and the SRAM accesses the simulation counted (systolic reuse included).
- ``paper``: the MixPE authors' model (ANT ``stats.get_energy_breakdown``):
  every PE of the array draws its dynamic power in each busy cycle and its
  leakage all the time; each MAC reads both operands from SRAM; the static
  part is the DRAM's background power only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from math import sqrt
from typing import Any

import yaml

from .config_base import YamlLoader
from .errors import ConfigError
from .hw.config import (AcceleratorConfig, DequantPlacement, EnergyAccounting, PeConfig, PeKind, SramConfig)
from .hw.pe import ENERGY_AREA_ATTRIBUTES, pe_class, pe_model
from .workload.quant import NumberFormat

PJ = 1e-12


@functools.lru_cache(maxsize=1)
def constants() -> dict[str, Any]:
    """The parsed ``energy_area.yaml`` (read once; treat as read-only)."""
    text = (resources.files("mixpe_sys") / "data" / "energy_area.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy of one op or a run, in joules."""

    static_j: float = 0.0
    dram_j: float = 0.0
    buffer_j: float = 0.0
    core_j: float = 0.0

    @property
    def energy_j(self) -> float:
        """Total energy (J)."""
        return self.static_j + self.dram_j + self.buffer_j + self.core_j

    def to_dict(self) -> dict[str, float]:
        """``{static, dram, buffer, core}`` in J."""
        return {"static": self.static_j, "dram": self.dram_j, "buffer": self.buffer_j, "core": self.core_j}

    def __add__(self, other: "EnergyBreakdown") -> "EnergyBreakdown":
        return EnergyBreakdown(self.static_j + other.static_j, self.dram_j + other.dram_j,
                               self.buffer_j + other.buffer_j, self.core_j + other.core_j)


# ---------------------------------------------------------------- PEs


def paper_pe(pe: PeConfig) -> dict | None:
    """The synthesis entry of a paper-rule PE (its ``max_bits,min_bits``), or None."""
    if pe.kind != PeKind.PAPER_RULE:
        return None
    return constants()["paper_pes"].get(f"{pe.max_bits},{pe.min_bits}")


def _scaled_energy_pj(pj_45nm: float) -> float:
    return pj_45nm * constants()["scaling"]["energy_factor"]


def pe_figures(pe: PeConfig) -> dict[str, Any]:
    """Energy and area figures of a PE kind, as an ``energy_area.yaml`` ``pes`` entry (45 nm).

    The data file's entry for the kind; else, for a paper-rule PE, that of its
    area twin; else the figures its :class:`~mixpe_sys.hw.pe.PeModel` class
    states (``mult_pj_per_cycle_45nm``, ``acc_pj_per_mac_45nm``,
    ``area_components_45nm``).

    Raises
    ------
    ConfigError
        If neither the data file nor the class gives figures for the kind.
    """
    table = constants()["pes"]
    if pe.kind in table:
        return table[pe.kind]
    if pe.kind == PeKind.PAPER_RULE:
        paper = paper_pe(pe)  # a paper PE without a synthesis entry: use its area twin
        return table[paper["area_like"] if paper else "bitfusion"]
    cls = pe_class(pe.kind)
    figures = cls.energy_area_figures()
    if figures is None:
        raise ConfigError(f"PE kind '{pe.kind}' has no energy/area figures: set {', '.join(ENERGY_AREA_ATTRIBUTES)} "
                          f"on {cls.__qualname__} (or add a 'pes' entry to energy_area.yaml)")
    return figures


def pe_mac_energy_pj(pe: PeConfig, weight_bits: int, activation_bits: int,
                     activation_format: NumberFormat = NumberFormat.INT) -> float:
    """Dynamic energy of one MAC at these operand widths (pJ, 28 nm).

    Synthesised paper PEs: the busy-cycle energy divided by the MACs per cycle.
    Other PEs: ``(mult / macs_per_cycle + acc) x scaling x overhead`` from the
    data file.
    """
    rate = float(pe_model(pe).macs_per_cycle(weight_bits, activation_bits, activation_format))
    paper = paper_pe(pe)
    if paper is not None:
        return paper["dynamic_uw"] * 1e-6 / constants()["paper_pe_frequency_hz"] / PJ / rate
    spec = pe_figures(pe)
    arith = spec["mult_pj_per_cycle"] / rate + spec["acc_pj_per_mac"]
    return _scaled_energy_pj(arith) * constants()["pe_overhead_factor"]


def pe_cycle_energy_pj(pe: PeConfig, weight_bits: int, activation_bits: int,
                       activation_format: NumberFormat = NumberFormat.INT) -> float:
    """Dynamic energy of one PE busy cycle at these operand widths (pJ)."""
    rate = float(pe_model(pe).macs_per_cycle(weight_bits, activation_bits, activation_format))
    return pe_mac_energy_pj(pe, weight_bits, activation_bits, activation_format) * rate


def pe_leakage_w(pe: PeConfig) -> float:
    """Leakage power of one PE (W): synthesised for paper PEs, else a fixed share
    of its dynamic power at full activity at 500 MHz (``pe_leakage_ratio``)."""
    c = constants()
    paper = paper_pe(pe)
    if paper is not None:
        return paper["leakage_uw"] * 1e-6
    spec = pe_figures(pe)
    full_cycle_pj = _scaled_energy_pj(spec["mult_pj_per_cycle"] + spec["acc_pj_per_mac"]) * c["pe_overhead_factor"]
    return c["pe_leakage_ratio"] * full_cycle_pj * PJ * c["paper_pe_frequency_hz"]


# ---------------------------------------------------------------- memories


def sram_pj_per_bit(role: str, sram: SramConfig) -> tuple[float, float]:
    """(read, write) pJ/bit of a buffer in ``role`` (weight, activation, output),
    scaled from the reference bank size as sqrt(bank bytes / reference bytes)."""
    ref = constants()["sram"][role]
    bank = sram.capacity_bytes / sram.banks
    f = sqrt(bank / ref["ref_bank_bytes"])
    return ref["read_pj_per_bit"] * f, ref["write_pj_per_bit"] * f


def dram_constants(kind: str) -> dict[str, Any]:
    """Energy figures of a DRAM kind: exact name, else the longest known prefix, else ``default``."""
    table = constants()["dram"]
    if kind in table:
        return table[kind]
    best = max((k for k in table if k != "default" and kind.startswith(k)), key=len, default="default")
    return table[best]


def dram_static_power_w(design: AcceleratorConfig) -> float:
    """DRAM background power (W)."""
    d = dram_constants(design.dram.kind)
    if "static_w" in d:
        return float(d["static_w"])
    return float(d["static_w_per_gib"]) * design.dram.capacity_bytes / 2**30


def sram_capacity_kib(design: AcceleratorConfig) -> float:
    """All on-chip SRAM (tile buffers of every tile, and the global buffer) in KiB."""
    t = design.tile
    per_tile = t.weight_buffer.capacity_bytes + t.activation_buffer.capacity_bytes + t.output_buffer.capacity_bytes
    total = design.num_tiles * per_tile + (design.global_buffer.capacity_bytes if design.global_buffer else 0)
    return total / 1024


def noc_average_hops(design: AcceleratorConfig) -> float:
    """Average link hops of a transfer (0 without an interconnect; first-order per topology)."""
    if design.noc is None:
        return 0.0
    n = design.num_tiles
    topo = design.noc.topology.value
    if topo == "star":
        return 2.0
    if topo == "ring":
        return max(1.0, (n + 2) / 4)
    return max(1.0, 2 * sqrt(n) / 3 + 1)


# ---------------------------------------------------------------- ops


def _dequant_pj_per_element(design: AcceleratorConfig, activation_fp: bool) -> float:
    d = constants()["dequant"]
    placement = design.tile.dequant.placement
    if placement is DequantPlacement.POST_GEMM:
        pj = d["post_gemm"]["energy_pj"]
    elif placement is DequantPlacement.IN_LOOP:
        pj = d["in_loop_fp" if activation_fp else "in_loop_int"]["energy_pj"]
    else:
        return 0.0
    return _scaled_energy_pj(pj)


def op_energy(cost, design: AcceleratorConfig) -> EnergyBreakdown:
    """Energy of one op from its counters.

    Parameters
    ----------
    cost:
        An :class:`~mixpe_sys.sim.op_sim.OpCost` (or any object with its counter fields).
    design:
        The accelerator it ran on.

    Returns
    -------
    EnergyBreakdown
        ``static``, ``dram``, ``buffer`` and ``core`` parts (J).
    """
    c = constants()
    tile = design.tile
    pe = tile.pe_array.pe
    time_s = cost.time_ns * 1e-9
    fmt = NumberFormat.FP if cost.activation_fp else NumberFormat.INT
    on_array = cost.macs > 0
    paper = design.energy_accounting is EnergyAccounting.PAPER

    # DRAM
    d = dram_constants(design.dram.kind)
    dram_pj = 8 * (cost.dram_read_bytes * d["read_pj_per_bit"] + cost.dram_write_bytes * d["write_pj_per_bit"])

    # SRAM by buffer
    w_r, w_w = sram_pj_per_bit("weight", tile.weight_buffer)
    a_r, a_w = sram_pj_per_bit("activation", tile.activation_buffer)
    o_r, o_w = sram_pj_per_bit("output", tile.output_buffer)
    out_read = max(0, cost.sram_read_bytes - cost.w_sram_read_bytes - cost.a_sram_read_bytes - cost.gbuf_read_bytes)
    out_write = max(0, cost.sram_write_bytes - cost.w_sram_write_bytes - cost.a_sram_write_bytes
                    - cost.gbuf_write_bytes)
    if paper:
        sram = c["sram"]
        w_r, w_w = sram["weight"]["read_pj_per_bit"], sram["weight"]["write_pj_per_bit"]
        a_r, a_w = sram["activation"]["read_pj_per_bit"], sram["activation"]["write_pj_per_bit"]
        o_r, o_w = sram["output"]["read_pj_per_bit"], sram["output"]["write_pj_per_bit"]
        operand_reads_pj = cost.macs * (cost.weight_bits * w_r + cost.activation_bits * a_r)
    else:
        operand_reads_pj = 8 * (cost.w_sram_read_bytes * w_r + cost.a_sram_read_bytes * a_r)
    buffer_pj = operand_reads_pj + 8 * (cost.w_sram_write_bytes * w_w + cost.a_sram_write_bytes * a_w
                                        + out_read * o_r + out_write * o_w)
    if design.global_buffer is not None and not paper:
        g_r, g_w = sram_pj_per_bit("activation", design.global_buffer)
        buffer_pj += 8 * (cost.gbuf_read_bytes * g_r + cost.gbuf_write_bytes * g_w)
    if not paper:
        link_bytes = cost.dram_read_bytes + cost.dram_write_bytes + cost.gbuf_read_bytes
        buffer_pj += 8 * link_bytes * noc_average_hops(design) * c["noc"]["link_pj_per_bit_per_hop"]

    # core
    leak_w = pe_leakage_w(pe) * design.num_pes
    core_pj = leak_w * time_s / PJ
    if on_array:
        if paper:
            core_pj += cost.compute_cycles * design.num_pes * pe_cycle_energy_pj(
                pe, cost.weight_bits, cost.activation_bits, fmt)
        else:
            core_pj += cost.macs * pe_mac_energy_pj(pe, cost.weight_bits, cost.activation_bits, fmt)
    core_pj += cost.dequant_elements * _dequant_pj_per_element(design, cost.activation_fp)
    core_pj += cost.vector_ops * _scaled_energy_pj(c["vector"]["energy_pj_per_op"])

    # static
    static_w = dram_static_power_w(design)
    if not paper:
        static_w += sram_capacity_kib(design) * c["sram"]["leakage_uw_per_kib"] * 1e-6
    return EnergyBreakdown(static_j=static_w * time_s, dram_j=dram_pj * PJ, buffer_j=buffer_pj * PJ,
                           core_j=core_pj * PJ)
