"""Processing-element types: MACs per PE per cycle for given operand widths.

Each PE type is a subclass of :class:`PeModel` registered under a kind name
(a plain string; :class:`~mixpe_sys.hw.config.PeKind` names the built-in
ones) through ``__init_subclass__``; look one up with :func:`pe_model`.
Throughput is an exact :class:`fractions.Fraction` (e.g. 1/2 MAC per cycle
for a two-pass multiply) so cycle counts are exact.

User code adds a PE type without editing the package::

    class MyPe(PeModel, kind="my_pe"):
        def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
            ...
        mult_pj_per_cycle_45nm = 0.12
        acc_pj_per_mac_45nm = 0.1
        area_components_45nm = {"add12": 3, "add32": 1, "dff": 44}

after which ``kind: my_pe`` is valid in a design (see ``docs/tutorials/add_pe.md``).
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil
from typing import Any, ClassVar, Mapping

from ..errors import ConfigError, MappingError
from ..workload.quant import NumberFormat
from .claims import Claims, multiples as _multiples, operand_problem
from .config import PeConfig
from .pe_registry import BUILTIN_PE_KINDS, PE_TYPES, PeKind

#: Class attributes through which a PE type states its own energy and area.
ENERGY_AREA_ATTRIBUTES = ("mult_pj_per_cycle_45nm", "acc_pj_per_mac_45nm", "area_components_45nm")


class PeModel:
    """Base PE type: subclass with ``kind="name"`` and override :meth:`macs_per_cycle`.

    A PE type supplies its throughput rule (:meth:`macs_per_cycle`, and
    :meth:`output_stationary_factors` if its extra MACs are not along K) and,
    unless ``mixpe_sys/data/energy_area.yaml`` has a ``pes`` entry for its kind,
    its energy and area through the three ``*_45nm`` class attributes (same
    meaning and 45 nm units as that file's entries; :mod:`mixpe_sys.energy`
    and :mod:`mixpe_sys.area` scale them to 28 nm and add the register and
    leakage overheads exactly as for the built-in PEs). The design supplies
    the rest in its ``pe`` block: pipeline depth, initiation interval (a rule
    divides its rate by ``initiation_interval_cycles``, as :meth:`_rate` does)
    and the native widths; the dequant placement is the tile's
    ``dequant.placement``.
    """

    kind: ClassVar[str]
    #: True when the PE multiplies group-quantized low-bit weights directly (post-GEMM dequant).
    mixed_precision: ClassVar[bool] = False
    #: Energy of the multiplying hardware in one fully used cycle, shared by the MACs it completes (pJ, 45 nm).
    mult_pj_per_cycle_45nm: ClassVar[float | None] = None
    #: Energy of one accumulation into the partial sum (pJ per MAC, 45 nm).
    acc_pj_per_mac_45nm: ClassVar[float | None] = None
    #: One PE's parts: counts of ``components_45nm`` entries of ``energy_area.yaml`` (``dff`` per register
    #: bit), plus an optional ``extra_um2`` (um^2 at 45 nm).
    area_components_45nm: ClassVar[Mapping[str, float] | None] = None

    def __init_subclass__(cls, kind: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            _register(cls, kind)

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

    def claims(self) -> Claims | None:
        """The operand widths the PE takes, or None: every width :meth:`macs_per_cycle` rates."""
        return None

    def operand_problem(self, weight_bits: int, activation_bits: int,
                        activation_format: NumberFormat = NumberFormat.INT) -> tuple[str, str] | None:
        """``(field, reason)`` when the PE does not take these operands, None when it claims them
        (the one precision rule, :mod:`.claims`)."""
        return operand_problem(self, weight_bits, activation_bits, activation_format)

    def output_stationary_factors(self, weight_bits: int, activation_bits: int,
                                  activation_format: NumberFormat = NumberFormat.INT
                                  ) -> tuple[int, int, Fraction]:
        """How the PE's throughput is laid onto an output-stationary array.

        Returns ``(row_factor, col_factor, k_factor)``: one PE covers
        ``row_factor`` activation rows and ``col_factor`` output columns and
        advances ``k_factor`` reduction steps per cycle, so an ``[m, k] x [k, n]``
        block takes ``ceil(m / (R * row_factor)) * ceil(n / (C * col_factor))``
        passes of ``ceil(k / k_factor)`` cycles. The default packs the whole
        rate along K: ``(1, 1, macs_per_cycle)``.
        """
        return 1, 1, self.macs_per_cycle(weight_bits, activation_bits, activation_format)

    @classmethod
    def energy_area_figures(cls) -> dict[str, Any] | None:
        """The class's own figures as an ``energy_area.yaml`` ``pes`` entry, or None if it states none."""
        if cls.mult_pj_per_cycle_45nm is None:
            return None
        return {"mult_pj_per_cycle": float(cls.mult_pj_per_cycle_45nm),
                "acc_pj_per_mac": float(cls.acc_pj_per_mac_45nm),
                "area": dict(cls.area_components_45nm)}

    def _rate(self, passes: int) -> Fraction:
        """``1 / (passes x initiation interval)`` MACs per cycle."""
        return Fraction(1, passes * self.config.initiation_interval_cycles)

    def _unsupported(self, what: str) -> MappingError:
        return MappingError(f"PE type '{self.kind}' cannot multiply {what}")


def _register(cls: type[PeModel], kind: str) -> None:
    if cls.macs_per_cycle is PeModel.macs_per_cycle:
        raise TypeError(f"PE type {cls.__qualname__} (kind '{kind}') must override macs_per_cycle")
    given = [a for a in ENERGY_AREA_ATTRIBUTES if getattr(cls, a) is not None]
    if given and len(given) < len(ENERGY_AREA_ATTRIBUTES):
        missing = ", ".join(a for a in ENERGY_AREA_ATTRIBUTES if a not in given)
        raise TypeError(f"PE type {cls.__qualname__} (kind '{kind}') sets {', '.join(given)} but not {missing}")
    PE_TYPES.add(cls, kind)
    cls.kind = kind


def unregister_pe_kind(kind: str) -> None:
    """Remove a user PE type from the registry (built-in kinds cannot be removed; unknown kinds are ignored)."""
    PE_TYPES.remove(kind)


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

    def claims(self):
        c = self.config
        weights = tuple(range(1, 17)) if c.bit_serial else _multiples(c.native_weight_bits, 16)
        return Claims(weights, int_activation_bits=_multiples(c.native_activation_bits, 16),
                      why="integer shift-add in whole passes of its native widths; bit-serial: any weight width")


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

    def claims(self):
        c = self.config
        weights = tuple(range(1, 17)) if c.bit_serial else _multiples(c.native_weight_bits, 16)
        return Claims(weights, int_activation_bits=(8,), fp_activation_bits=(16,),
                      why="an FP16 exponent-add path; INT8 converts to FP16 exactly")


class Int8Mac(PeModel, kind=PeKind.INT8_MAC):
    """TPU-like INT8 multiplier-accumulator: one INT8 x INT8 MAC per cycle.

    Narrower integers run at the same rate; wider integers take
    ``ceil(bits / 8)`` passes per operand. FP operands are not supported.
    Source: Jouppi et al., "In-datacenter performance analysis of a tensor
    processing unit", ISCA 2017 (8-bit MAC systolic array).
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        if activation_format is NumberFormat.FP:
            raise self._unsupported(f"FP{activation_bits} activations")
        return self._rate(ceil(weight_bits / 8) * ceil(activation_bits / 8))

    def claims(self):
        return Claims(_multiples(8, 32), int_activation_bits=_multiples(8, 32),
                      why="whole 8-bit passes; 4-bit weights need an in-loop converter, kind 'dequant_w4a8'")


class Fp16Mac(PeModel, kind=PeKind.FP16_MAC):
    """FP16 multiplier with FP32 accumulation: one MAC per cycle for any operand up to 16 bits.

    Source: the FP16 baseline of the MixPE evaluation (arXiv 2411.16158, Sec. 5)
    and mixed-precision tensor cores (FP16 products, FP32 sums).
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        if weight_bits > 16 or activation_bits > 16:
            raise self._unsupported(f"{weight_bits}x{activation_bits}-bit operands")
        return self._rate(1)

    def claims(self):
        return Claims((16,), fp_activation_bits=(8, 16),
                      why="an FP16 datapath; low-bit weights need an in-loop dequantizer, kind 'dequant_w4a16'")


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

    def output_stationary_factors(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        """The authors' mapping: the activation factor multiplies the array rows
        (batch), the weight factor the columns (output channels); K advances one
        step per cycle (``ceil(b / (N pf_a)) * ceil(oc / (M pf_w)) * ic`` cycles
        per tile in their ``get_compute_cycles_output_stationary``). Operands
        wider than ``pmax`` slow K down by ``ceil(p / pmax)``."""
        pmax, pmin = self.config.max_bits, self.config.min_bits
        factors, k_factor = [], Fraction(1, self.config.initiation_interval_cycles)
        for p in (activation_bits, weight_bits):
            per = pmax // max(p, pmin)
            factors.append(max(per, 1))
            if per < 1:
                k_factor /= ceil(p / pmax)
        return factors[0], factors[1], k_factor

    def claims(self):
        pmax = self.config.max_bits
        widths = tuple(sorted({b for b in (2, 4, 8, 16, 32) if b <= pmax} | set(_multiples(pmax, 32))))
        return Claims(widths, int_activation_bits=widths, fp_activation_bits=widths,
                      why="the authors' rule: powers of two up to pmax, multiples of pmax above")


class DequantW4A16(PeModel, kind=PeKind.DEQUANT_W4A16):
    """TensorRT-LLM-style W4A16: an FP16 multiplier with FP32 accumulation fed by an in-loop dequantizer.

    Per cycle: one FP16 x FP16 MAC. Every INT4 weight is converted to FP16,
    ``(q - z) * s``, by the tile's dequant unit (placement ``in_loop``) each
    time it enters the array, before the MAC; the conversion throughput and
    depth are the dequant unit's, so the GEMM runs at FP16 rate behind it.
    Operands up to 16 bits run at one MAC per cycle (after conversion every
    weight is FP16). Source: the weight-only GEMM kernels of TensorRT-LLM
    (``fpA_intB`` GEMM, dequantize-then-MMA in the main loop), as described in
    the MixPE paper (arXiv 2411.16158, Sec. 2).
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        if weight_bits > 16 or activation_bits > 16:
            raise self._unsupported(f"{weight_bits}x{activation_bits}-bit operands")
        return self._rate(1)

    def claims(self):
        return Claims((4, 8, 16), fp_activation_bits=(16,), why="an FP16 MAC behind an INT4/INT8 -> FP16 converter")


class DequantW4A8(PeModel, kind=PeKind.DEQUANT_W4A8):
    """QServe-style W4A8: an INT8 x INT8 MAC fed by an in-loop INT4 -> INT8 converter.

    Per cycle: one INT8 MAC (32-bit accumulation). Each INT4 weight is first
    restored to INT8 by the dequant unit (placement ``in_loop``, a subtract
    of the zero point and a multiply by the 8-bit group scale of QServe's
    progressive group quantization) every time it enters the array. Wider
    integers take ``ceil(bits / 8)`` passes per operand; FP activations are not
    supported. Source: Lin et al., "QServe: W4A8KV4 quantization and system
    co-design", arXiv 2405.04532 (MLSys 2025), Sec. 4-5.
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        if activation_format is NumberFormat.FP:
            raise self._unsupported(f"FP{activation_bits} activations")
        return self._rate(ceil(weight_bits / 8) * ceil(activation_bits / 8))

    def claims(self):
        return Claims((4,) + _multiples(8, 32), int_activation_bits=_multiples(8, 32),
                      why="an INT8 MAC behind an INT4 -> INT8 converter; wider in whole 8-bit passes")


class BitFusion(PeModel, kind=PeKind.BITFUSION):
    """BitFusion fusion unit: ``(max_bits/2)^2`` 2-bit x 2-bit BitBricks (16 for an 8-bit unit).

    Operands are split into 2-bit pieces and bricks fuse at run time, so per
    cycle a unit does ``bricks / (ceil(w/2) * ceil(a/2))`` MACs: 2x2 -> 16,
    4x4 -> 4, 4x8 -> 2, 8x8 -> 1, 16x16 -> 1/4 (multi-cycle). FP activations are
    not supported. Source: Sharma et al., "Bit Fusion: Bit-level dynamically
    composable architecture for accelerating deep neural networks", ISCA 2018,
    Sec. 3.
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        if activation_format is NumberFormat.FP:
            raise self._unsupported(f"FP{activation_bits} activations")
        bricks = (max(self.config.max_bits, 2) // 2) ** 2
        return Fraction(bricks, ceil(weight_bits / 2) * ceil(activation_bits / 2)) \
            / self.config.initiation_interval_cycles

    def claims(self):
        return Claims((2, 4, 8, 16), int_activation_bits=(2, 4, 8, 16), why="fused 2-bit BitBricks")


class Ant(PeModel, kind=PeKind.ANT):
    """ANT 4-bit PE: a ``native`` x ``native``-bit integer multiplier behind a numeric-type decoder.

    Per cycle: one 4-bit x 4-bit MAC; the decoder turns ANT's int/flint/PoT
    4-bit codes into an integer and an exponent shift, so every 4-bit type runs
    at that rate. 8-bit operands are built from 4-bit pieces over several
    passes (``ceil(w / 4) * ceil(a / 4)``: 4x8 -> 2 passes, 8x8 -> 4), as ANT
    composes an 8-bit product from four 4-bit ones. FP activations are not
    supported. Source: Guo et al., "ANT: Exploiting adaptive numerical data
    type for low-bit deep neural network quantization", MICRO 2022, Sec. 5.
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        cfg = self.config
        if activation_format is NumberFormat.FP:
            raise self._unsupported(f"FP{activation_bits} activations")
        return self._rate(ceil(weight_bits / cfg.native_weight_bits)
                          * ceil(activation_bits / cfg.native_activation_bits))

    def claims(self):
        c = self.config
        return Claims(_multiples(c.native_weight_bits, 16), int_activation_bits=_multiples(c.native_activation_bits, 16),
                      why="4-bit ANT types, wider in whole passes of its native widths")


class TensorCore(PeModel, kind=PeKind.TENSOR_CORE):
    """A GPU SM's tensor cores as one PE type: FP16/BF16 at the base rate, narrower integers faster.

    FP16 (or BF16) activations: one MAC per PE per cycle, for weights of up
    to 16 bits (narrower weights are converted to FP16 before the MMA, by the
    tile's in-loop dequant unit when group-quantized). Integer activations
    and weights of up to 8 bits: ``max_bits / p`` MACs per cycle with ``p = 4``
    when both fit in 4 bits and ``min_bits <= 4``, else 8 (INT8 at twice the
    FP16 rate: A100 624 dense INT8 TOPS vs 312 FP16 TFLOPS, NVIDIA A100
    whitepaper Table 1; H100 SXM5 1979 vs 989, H100 whitepaper; INT4 at four
    times on A100, 1248 TOPS). FP8, TF32/FP32 and wider integers are not
    modelled and raise.
    """

    def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
        cfg = self.config
        if activation_format is NumberFormat.FP:
            if activation_bits != 16 or weight_bits > 16:
                raise self._unsupported(f"FP{activation_bits} activations x {weight_bits}-bit weights "
                                        "(FP16/BF16 only)")
            return self._rate(1)
        if weight_bits > 8 or activation_bits > 8:
            raise self._unsupported(f"INT{weight_bits} x INT{activation_bits} (integer MMAs take up to 8 bits)")
        p = 4 if max(weight_bits, activation_bits) <= 4 and cfg.min_bits <= 4 else 8
        return Fraction(cfg.max_bits // p, cfg.initiation_interval_cycles)


def pe_class(kind: str) -> type[PeModel]:
    """The PE type registered under ``kind``.

    Raises
    ------
    ConfigError
        If no PE type has that kind (the message lists the registered ones).
    """
    return PE_TYPES.get(kind)


def pe_model(config: PeConfig) -> PeModel:
    """The registered PE model for ``config.kind``."""
    return pe_class(config.kind)(config)


def registered_pe_kinds() -> list[str]:
    """All PE kinds with a registered model, sorted."""
    return PE_TYPES.kinds()
