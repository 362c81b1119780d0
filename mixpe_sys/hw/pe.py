"""Processing-element types: MACs per PE per cycle for given operand widths.

Each PE type is a subclass of :class:`PeModel` registered under a
:class:`~mixpe_sys.hw.config.PeKind` through ``__init_subclass__``; look one
up with :func:`pe_model`. Throughput is an exact :class:`fractions.Fraction`
(e.g. 1/2 MAC per cycle for a two-pass multiply) so cycle counts are exact.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil
from typing import ClassVar

from ..errors import MappingError
from ..workload.quant import NumberFormat
from .config import PeConfig, PeKind

_REGISTRY: dict[PeKind, type["PeModel"]] = {}


class PeModel:
    """Base PE type: override :meth:`macs_per_cycle`."""

    kind: ClassVar[PeKind]
    #: True when the PE multiplies group-quantized low-bit weights directly (post-GEMM dequant).
    mixed_precision: ClassVar[bool] = False

    def __init_subclass__(cls, kind: PeKind | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            _REGISTRY[kind] = cls

    def __init__(self, config: PeConfig):
        self.config = config

    def macs_per_cycle(self, weight_bits: int, activation_bits: int,
                       activation_format: NumberFormat = NumberFormat.INT) -> Fraction:
        """MACs one PE completes per cycle for these operand widths (may be < 1 for multi-pass).

        Raises
        ------
        MappingError
            If the PE cannot multiply these operands at all.
        """
        raise NotImplementedError

    def _rate(self, passes: int) -> Fraction:
        return Fraction(1, passes * self.config.initiation_interval_cycles)

    def _unsupported(self, what: str) -> MappingError:
        return MappingError(f"PE type '{self.kind.value}' cannot multiply {what}")


class ShiftAddW4A8(PeModel, kind=PeKind.MIXPE_W4A8):
    """MixPE W4A8: INT4 weight x INT8 activation as ``sum_b w_b (x << b)``.

    Bit-parallel (default): the shifted copies of x for all set weight bits are
    summed in one adder tree, one MAC per cycle. Bit-serial: one weight bit per
    cycle. Wider integer weights take ``ceil(bits / native_weight_bits)``
    passes; wider integer activations ``ceil(bits / native_activation_bits)``.
    FP activations are not supported (use ``mixpe_w4a16``).
    """

    mixed_precision = True

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        cfg = self.config
        if activation_format is NumberFormat.FP:
            raise self._unsupported(f"FP{activation_bits} activations")
        w_passes = weight_bits if cfg.bit_serial else ceil(weight_bits / cfg.native_weight_bits)
        return self._rate(w_passes * ceil(activation_bits / cfg.native_activation_bits))


class ShiftAddW4A16(PeModel, kind=PeKind.MIXPE_W4A16):
    """MixPE W4A16: INT4 weight x FP16 activation; ``x * 2^b`` is an add to x's exponent.

    The shifted copies are summed by FP16 adders, so there is no FP multiplier
    and the pipeline is deeper than the integer path. One MAC per cycle
    (bit-parallel) for weights up to ``native_weight_bits``; wider integer
    weights take more passes. Integer activations up to 16 bits are converted
    to FP16 exactly on input; FP32 activations are not supported.
    """

    mixed_precision = True

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        cfg = self.config
        if activation_bits > 16:
            raise self._unsupported(f"{activation_bits}-bit activations")
        w_passes = weight_bits if cfg.bit_serial else ceil(weight_bits / cfg.native_weight_bits)
        return self._rate(w_passes)


class Int8Mac(PeModel, kind=PeKind.INT8_MAC):
    """TPU-like INT8 multiplier-accumulator: one INT8 x INT8 MAC per cycle.

    Narrower integers run at the same rate; wider integers take
    ``ceil(bits / 8)`` passes per operand. FP operands are not supported.
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        if activation_format is NumberFormat.FP:
            raise self._unsupported(f"FP{activation_bits} activations")
        return self._rate(ceil(weight_bits / 8) * ceil(activation_bits / 8))


class Fp16Mac(PeModel, kind=PeKind.FP16_MAC):
    """FP16 multiplier with FP32 accumulation: one MAC per cycle for any operand up to 16 bits."""

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        if weight_bits > 16 or activation_bits > 16:
            raise self._unsupported(f"{weight_bits}x{activation_bits}-bit operands")
        return self._rate(1)


class PaperRule(PeModel, kind=PeKind.PAPER_RULE):
    """The MixPE authors' throughput rule (from the BitFusion/ANT simulator).

    A PE with maximum precision ``pmax`` and minimum ``pmin`` does
    ``floor(pmax / max(p, pmin))`` MACs per operand per cycle; the two
    operands' factors multiply. E.g. an (8,4) PE: 4x4 bits -> 4 MACs/cycle,
    4x8 -> 2, 8x8 -> 1; a (16,8) PE: 8x8 -> 4, 16x16 -> 1. Operands wider than
    ``pmax`` take ``ceil(p / pmax)`` passes.
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        pmax, pmin = self.config.max_bits, self.config.min_bits
        rate = Fraction(1)
        for p in (weight_bits, activation_bits):
            per = pmax // max(p, pmin)
            rate *= per if per >= 1 else Fraction(1, ceil(p / pmax))
        return rate / self.config.initiation_interval_cycles


def pe_model(config: PeConfig) -> PeModel:
    """The registered PE model for ``config.kind``."""
    try:
        cls = _REGISTRY[config.kind]
    except KeyError:  # pragma: no cover - every PeKind is registered below
        raise MappingError(f"no PE model registered for '{config.kind.value}'") from None
    return cls(config)


def registered_pe_kinds() -> list[PeKind]:
    """All PE kinds with a registered model."""
    return list(_REGISTRY)
