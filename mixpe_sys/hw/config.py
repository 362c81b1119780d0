"""Hardware configuration dataclasses: DRAM, SRAM, interconnect, PE array, tile, accelerator.

Every field carries its unit in its name and a help string; values are checked
on construction. Designs are written as YAML files (see ``mixpe_sys/designs``)
and loaded through :meth:`AcceleratorConfig.from_dict`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config_base import ConfigBase, param
from ..errors import ConfigError
from ..limits import (MAX_ARRAY_DIM, MAX_BANKS, MAX_DRAM_CHANNELS, MAX_FREQUENCY_HZ, MAX_TILES, MIN_BANDWIDTH_BYTES_PER_S,
                      MIN_FREQUENCY_HZ)
from ..workload.paper import PaperProfile
from .pe_registry import BUILTIN_PE_KINDS, PeKind, unknown_pe_kind  # noqa: F401  (PeKind re-exported)
from ..workload.quant import QuantScheme
from .launch import LaunchConfig


class Dataflow(str, enum.Enum):
    """How a GEMM tile is laid onto the PE array."""

    OUTPUT_STATIONARY = "output_stationary"  # each PE accumulates one output over K
    WEIGHT_STATIONARY = "weight_stationary"  # each PE holds a weight; preload R cycles per fold
    INPUT_STATIONARY = "input_stationary"  # each PE holds an activation; preload R cycles per fold
    WEIGHT_STREAMING = "weight_streaming"  # a new weight block every cycle over a wide port (GEMV)


class DequantPlacement(str, enum.Enum):
    """Where weight dequantization happens."""

    NONE = "none"  # weights are not group-quantized
    POST_GEMM = "post_gemm"  # MixPE: once per group after the group's dot product
    IN_LOOP = "in_loop"  # baselines: every weight converted before the MAC


class Topology(str, enum.Enum):
    """Interconnect topologies built by ``mixpe_sys.hw.noc``."""

    STAR = "star"  # every node to one central switch
    RING = "ring"  # bidirectional ring: dram, global buffer, tiles
    MESH = "mesh"  # 2-D mesh of tiles, dram and global buffer attached to corner routers


@dataclass(frozen=True, kw_only=True)
class RowBufferConfig(ConfigBase):
    """Optional DRAM bank / row-buffer timing."""

    banks_per_channel: int = param(16, help="banks per channel", ge=1, le=MAX_BANKS)
    row_bytes: int = param(2048, help="row (page) size per bank", unit="bytes", ge=1)
    t_rcd_ns: float = param(14.0, help="row activate to column command delay", unit="ns", ge=0)
    t_rp_ns: float = param(14.0, help="row precharge time", unit="ns", ge=0)


@dataclass(frozen=True, kw_only=True)
class DramConfig(ConfigBase):
    """Off-chip DRAM: channels sharing the peak bandwidth equally, address-interleaved."""

    kind: str = param("custom", help="DRAM technology label, e.g. hbm2e, lpddr5-6400")
    channels: int = param(help="independent channels", ge=1, le=MAX_DRAM_CHANNELS)
    bandwidth_bytes_per_s: float = param(help="peak bandwidth of all channels together", unit="bytes/s", gt=0)
    latency_ns: float = param(help="idle access latency, request to first data", unit="ns", ge=0)
    interleave_bytes: int = param(256, help="address interleaving granularity across channels", unit="bytes", ge=1)
    capacity_bytes: int = param(16 * 2**30, help="total capacity (bounds the KV cache)", unit="bytes", ge=1)
    bandwidth_efficiency: float = param(1.0, help="sustained fraction of peak bandwidth (refresh, bus turnaround)",
                                        gt=0, le=1)
    row_buffer: RowBufferConfig | None = param(None, help="bank/row-buffer timing; null = bandwidth and latency only")

    def validate(self) -> None:
        if self.channel_bandwidth_bytes_per_s < MIN_BANDWIDTH_BYTES_PER_S:
            raise ConfigError(f"field 'bandwidth_bytes_per_s': {self.bandwidth_bytes_per_s:g} bytes/s x efficiency "
                              f"{self.bandwidth_efficiency:g} over {self.channels} channels is below "
                              f"{MIN_BANDWIDTH_BYTES_PER_S:g} byte/s per channel (mixpe_sys.limits)")

    @property
    def channel_bandwidth_bytes_per_s(self) -> float:
        """Sustained bandwidth of one channel (bytes/s)."""
        return self.bandwidth_bytes_per_s * self.bandwidth_efficiency / self.channels


@dataclass(frozen=True, kw_only=True)
class SramConfig(ConfigBase):
    """An on-chip SRAM buffer: banks x width bytes per cycle, optionally double-buffered."""

    capacity_bytes: int = param(help="total capacity", unit="bytes", ge=1)
    banks: int = param(8, help="independent banks accessed in parallel", ge=1)
    bank_width_bytes: int = param(64, help="bytes per bank per cycle", unit="bytes", ge=1)
    double_buffered: bool = param(True, help="split into two halves: one filled while the other is used")
    latency_cycles: int = param(1, help="access latency", unit="cycles", ge=0)

    @property
    def bytes_per_cycle(self) -> int:
        """Peak access bandwidth (bytes/cycle)."""
        return self.banks * self.bank_width_bytes

    @property
    def slot_bytes(self) -> int:
        """Largest tile one slot holds: half the capacity when double-buffered (bytes)."""
        return self.capacity_bytes // 2 if self.double_buffered else self.capacity_bytes


@dataclass(frozen=True, kw_only=True)
class NocConfig(ConfigBase):
    """On-chip interconnect between DRAM controller, global buffer and tiles."""

    topology: Topology = param(Topology.STAR, help="star, ring or mesh")
    link_bandwidth_bytes_per_s: float = param(help="bandwidth of each link, one direction", unit="bytes/s", gt=0)
    link_latency_ns: float = param(2.0, help="latency of each link hop", unit="ns", ge=0)
    dram_link_bandwidth_bytes_per_s: float = param(0.0, help="bandwidth of links touching the DRAM node "
                                                   "(0 = same as the DRAM peak)", unit="bytes/s", ge=0)

    def validate(self) -> None:
        for name in ("link_bandwidth_bytes_per_s", "dram_link_bandwidth_bytes_per_s"):
            value = getattr(self, name)
            if 0 < value < MIN_BANDWIDTH_BYTES_PER_S or (name == "link_bandwidth_bytes_per_s" and value == 0):
                raise ConfigError(f"field '{name}': {value:g} bytes/s is below {MIN_BANDWIDTH_BYTES_PER_S:g} byte/s "
                                  f"(mixpe_sys.limits)")


@dataclass(frozen=True, kw_only=True)
class PeConfig(ConfigBase):
    """One processing element type and its timing parameters."""

    kind: str = param(help="PE type, a kind in the PE registry (mixpe_sys.hw.pe): built in "
                      + ", ".join(f"`{k}`" for k in BUILTIN_PE_KINDS) + ", or the kind of a user PeModel subclass")
    native_weight_bits: int = param(4, help="weight bits multiplied in one pass (shift-add and ANT PEs)", unit="bits",
                                    ge=1)
    native_activation_bits: int = param(8, help="activation bits handled in one pass (shift-add and ANT PEs)",
                                        unit="bits", ge=1)
    bit_serial: bool = param(False, help="shift-add PEs: one weight bit per cycle instead of all bits at once")
    max_bits: int = param(8, help="paper rule: maximum precision pmax of the PE; bitfusion: the fused width "
                          "((max_bits/2)^2 BitBricks); tensor_core: the operand width of the base rate (16)",
                          unit="bits", ge=1)
    min_bits: int = param(4, help="paper rule: minimum precision pmin of the PE; tensor_core: the narrowest "
                          "integer MMA (8, or 4 with INT4 tensor cores)", unit="bits", ge=1)
    pipeline_depth_cycles: int = param(2, help="latency from operand in to product accumulated", unit="cycles", ge=0)
    initiation_interval_cycles: int = param(1, help="cycles between successive MAC issues", unit="cycles", ge=1)

    def validate(self) -> None:
        reason = unknown_pe_kind(self.kind)
        if reason:
            raise ConfigError(f"field 'kind': {reason}")

    @classmethod
    def _from_mapping(cls, data, path, lm):
        # Check the kind before building, so an error in a file names the kind's own line and full path.
        reason = unknown_pe_kind(data.get("kind")) if isinstance(data.get("kind"), str) else None
        if reason:
            raise lm.error(path + ("kind",), reason)
        return super()._from_mapping(data, path, lm)


@dataclass(frozen=True, kw_only=True)
class PeArrayConfig(ConfigBase):
    """A rows x cols PE array and the dataflows its mapper may use."""

    pe: PeConfig = param(help="the PE type")
    rows: int = param(help="PE rows (the K dimension for weight-stationary/streaming)", ge=1, le=MAX_ARRAY_DIM)
    cols: int = param(help="PE columns (the N dimension)", ge=1, le=MAX_ARRAY_DIM)
    dataflows: tuple[Dataflow, ...] = param((Dataflow.OUTPUT_STATIONARY,), help="dataflows the mapper may choose from")
    fill_drain: bool = param(True, help="pay the array's fill and drain on every fold, as cycle-accurate systolic "
                             "simulators do (false: folds cost their streaming cycles alone, the MixPE authors' model "
                             "and pipelined tensor-core MMAs)")

    def validate(self) -> None:
        if not self.dataflows:
            raise ConfigError("field 'dataflows': give at least one dataflow")


@dataclass(frozen=True, kw_only=True)
class DequantConfig(ConfigBase):
    """The dequantization unit: a pipeline with a depth and a throughput."""

    placement: DequantPlacement = param(DequantPlacement.POST_GEMM, help="post_gemm (MixPE), in_loop, or none")
    elements_per_cycle: int = param(64, help="elements dequantized (post-GEMM) or converted (in-loop) per cycle",
                                    unit="elements/cycle", ge=1)
    latency_cycles: int = param(4, help="pipeline depth", unit="cycles", ge=0)


@dataclass(frozen=True, kw_only=True)
class VectorUnitConfig(ConfigBase):
    """The tile's vector unit for softmax, norms, activations and elementwise ops."""

    lanes: int = param(64, help="elements processed per cycle", unit="elements/cycle", ge=1)
    latency_cycles: int = param(8, help="pipeline depth", unit="cycles", ge=0)


@dataclass(frozen=True, kw_only=True)
class TileConfig(ConfigBase):
    """A compute tile: PE array, its three buffers, dequant unit, vector unit."""

    pe_array: PeArrayConfig = param(help="the PE array")
    weight_buffer: SramConfig = param(help="weight (and scale/zero) buffer")
    activation_buffer: SramConfig = param(help="input activation buffer")
    output_buffer: SramConfig = param(help="output/accumulator buffer")
    dequant: DequantConfig = param(default_factory=DequantConfig, help="the dequantization unit")
    vector: VectorUnitConfig = param(default_factory=VectorUnitConfig, help="the vector unit")
    accumulator_bits: int = param(32, help="width of a partial sum in the output buffer", unit="bits", ge=1)


class EnergyAccounting(str, enum.Enum):
    """How ``mixpe_sys.energy`` turns an op's counters into joules."""

    SIMULATED = "simulated"  # counted MACs, SRAM and DRAM bytes; per-MAC energies by PE type
    PAPER = "paper"  # the MixPE authors' accounting (ANT stats.py): every PE busy in compute cycles,
    # one SRAM read of each operand per MAC, DRAM static power as the static part


@dataclass(frozen=True, kw_only=True)
class AcceleratorConfig(ConfigBase):
    """A whole accelerator: tiles, optional global buffer, interconnect, DRAM, clock."""

    name: str = param(help="design name")
    description: str = param("", help="what this design is and where its numbers come from")
    frequency_hz: float = param(help="core clock", unit="Hz", ge=MIN_FREQUENCY_HZ, le=MAX_FREQUENCY_HZ)
    num_tiles: int = param(1, help="number of identical compute tiles", ge=1, le=MAX_TILES)
    tile: TileConfig = param(help="the compute tile")
    dram: DramConfig = param(help="off-chip memory")
    global_buffer: SramConfig | None = param(None, help="shared on-chip SRAM staging activations for all tiles; "
                                             "null = none")
    noc: NocConfig | None = param(None, help="interconnect; null = tiles wired straight to the DRAM controller")
    native_quant: QuantScheme = param(default_factory=QuantScheme, key="quant",
                                      help="the quantization the design is built to run: the scheme of a run that "
                                      "names none (resolved by mixpe_sys.hw.precision.run_quant at the entry points; "
                                      "every run passes its scheme beside the design)")
    launch: LaunchConfig | None = param(None, help="fixed costs per kernel of a kernel-launched device (a GPU), "
                                        "per launch mode (graph or eager); null = none (mixpe_sys.hw.launch)")
    paper_profile: PaperProfile | None = param(None, help="how the MixPE authors' model runs this design "
                                               "(--workload paper); null = derived from quant and dequant")
    energy_accounting: EnergyAccounting = param(EnergyAccounting.SIMULATED,
                                                help="simulated (counted accesses) or paper (the MixPE authors' "
                                                "energy model, for comparison with their figures)")

    @classmethod
    def _from_mapping(cls, data, path, lm):
        if "op_overhead_ns" in data:
            raise lm.error(path + ("op_overhead_ns",), "replaced by 'launch' (graph_launch_ns, launch_ns, "
                           "host_dispatch_ns per kernel; the mode is chosen per run with launch=graph|eager)")
        return super()._from_mapping(data, path, lm)

    @property
    def cycle_ns(self) -> float:
        """Core clock period (ns)."""
        return 1e9 / self.frequency_hz

    @property
    def num_pes(self) -> int:
        """PEs in all tiles."""
        return self.num_tiles * self.tile.pe_array.rows * self.tile.pe_array.cols
