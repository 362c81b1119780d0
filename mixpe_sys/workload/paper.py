"""How the MixPE authors' simulator models a design (``--workload paper``): a value type of the workload."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config_base import ConfigBase, param


class DequantGemmPlacement(str, enum.Enum):
    """Where the MixPE authors' model puts its dequantization GEMM."""

    BEFORE = "before"  # baselines: [B x K] x [K x N/8] before each linear layer
    AFTER = "after"  # MixPE: [B x K/8] x [K/8 x N/128] after each linear layer


@dataclass(frozen=True, kw_only=True)
class PaperOverride(ConfigBase):
    """Layers the authors' model runs at other bit widths (ANT's 8-bit layers, BitFusion's 4-bit ones)."""

    layer_period: int = param(help="every layer_period-th layer ...", ge=1)
    layer_offset: int = param(0, help="... starting at this layer index", ge=0)
    ops: tuple[str, ...] = param((), help="op names affected (qkv, o_proj, ffn1, ffn2); empty = all")
    weight_bits: int = param(help="weight bits of the affected GEMMs", unit="bits", ge=1)
    activation_bits: int = param(help="activation bits of the affected GEMMs", unit="bits", ge=1)


@dataclass(frozen=True, kw_only=True)
class PaperProfile(ConfigBase):
    """How the MixPE authors' simulator models this design (``--workload paper``)."""

    weight_bits: int = param(help="weight bits of the linear-layer GEMMs in their model", unit="bits", ge=1)
    activation_bits: int = param(help="activation bits of the linear-layer GEMMs in their model", unit="bits", ge=1)
    dequant_gemm: DequantGemmPlacement = param(help="before (baselines) or after (MixPE) each linear layer")
    dequant_bits: int = param(help="operand bits of the dequantization GEMM (the design's high precision)",
                              unit="bits", ge=1)
    overrides: tuple[PaperOverride, ...] = param((), help="layers run at other bit widths")
