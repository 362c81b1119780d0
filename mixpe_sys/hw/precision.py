"""The precision rule and the group rule: which quantization schemes a design runs.

One rule for ``gemm``, ``run``, ``replay``, sweeps and the Python API:

- **Precision**: the design's PE type must claim the scheme's weight and
  activation widths, and the KV-cache width against the activations
  (:mod:`.claims`: each PE type states the widths it takes).
- **Groups**: group-wise scales (``group_size`` > 0 with weights below 8 bits)
  need a dequantizer (``tile.dequant.placement`` post_gemm or in_loop). A
  group size that does not divide the reduction length K leaves the last
  group of each column partial: ``ceil(K / group_size)`` groups, as GPTQ
  checkpoints store their scales (AutoGPTQ's ``QuantLinear`` keeps
  ``ceil(in_features / group_size)`` scale rows); a group longer than K is
  one partial group per column. ``mixpe-sim gemm`` states both in its
  output. ``group_size`` 0 with low-bit weights means one scale per output
  channel, applied with the output: neither its bytes (about ``5 / K`` of the
  weight bytes at 4 bits) nor a dequant step is simulated, as the output says.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..workload.quant import QuantScheme
from .config import AcceleratorConfig, DequantPlacement
from .pe import pe_model


def quant_problem(design: AcceleratorConfig, quant: QuantScheme) -> tuple[str, str] | None:
    """``(field, reason)`` when ``design`` cannot run ``quant``, else None."""
    pe = pe_model(design.tile.pe_array.pe)
    fmt = quant.activation_format
    found = pe.operand_problem(quant.weight_bits, quant.activation_bits, fmt)
    if found:
        return found[0], f"{quant.name} on design '{design.name}': {found[1]}"
    found = pe.operand_problem(quant.kv_bits, quant.activation_bits, fmt)
    if found:
        return "kv_bits", (f"{quant.kv_bits}-bit KV cache against {quant.activation_bits}-bit activations on design "
                           f"'{design.name}': {found[1]}")
    if quant.quantized_weights and quant.group_size and design.tile.dequant.placement is DequantPlacement.NONE:
        return "group_size", (f"group-wise scales (group {quant.group_size}) on design '{design.name}', which has no "
                              f"dequantizer (tile.dequant.placement: none); use group_size 0 (per-channel scales) "
                              f"or a design with post_gemm or in_loop dequant")
    return None


def check_quant(design: AcceleratorConfig, quant: QuantScheme, *, prefix: str = "quant.") -> None:
    """Raise ConfigError (field ``prefix + name``) when ``design`` cannot run ``quant``."""
    found = quant_problem(design, quant)
    if found:
        field, reason = found
        raise ConfigError(f"field '{prefix}{field}': {reason}")


def run_quant(design: AcceleratorConfig, quant: str | QuantScheme | None = None, *,
              group_size: int | None = None) -> QuantScheme:
    """The quantization of a run on ``design``: ``quant`` (a ``W4A8``-style string or a scheme), else the
    scheme the design is built to run; ``group_size`` (weights per group), if given, replaces the scheme's.

    Only the entry points (the CLI, :func:`mixpe_sys.simulate`, serving and system entries, sweep points)
    call this; everything below them takes the scheme as an argument beside the design.
    """
    q = design.native_quant if quant is None else (QuantScheme.parse(quant) if isinstance(quant, str) else quant)
    return q if group_size is None else q.replace(group_size=group_size)
