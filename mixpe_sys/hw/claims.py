"""The one precision rule: which operand widths a PE type takes.

A design runs a quantization scheme only when its PE type claims the
scheme's weight and activation widths (and the KV-cache width against the
activations). Each built-in type states its :class:`Claims`: its native
widths and the wider ones it builds from whole passes of them, as its
docstring in :mod:`.pe` describes. A narrower width than the PE is built for
(3-bit weights in a 4-bit slot, 7-bit activations) is not claimed: it would
be another encoding, which the design does not state. A user PE type that
states no claims takes every width its ``macs_per_cycle`` gives a rate for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import MappingError
from ..workload.quant import NumberFormat


@dataclass(frozen=True)
class Claims:
    """Operand widths (bits) a PE type takes, and why (shown in errors)."""

    weight_bits: tuple[int, ...]
    int_activation_bits: tuple[int, ...] = ()
    fp_activation_bits: tuple[int, ...] = ()
    why: str = ""


def multiples(native: int, most: int) -> tuple[int, ...]:
    """``native, 2 native, ...`` up to ``most`` bits (at least ``native`` itself)."""
    return tuple(range(native, max(native, most) + 1, native))


def operand_problem(pe: Any, weight_bits: int, activation_bits: int,
                    activation_format: NumberFormat = NumberFormat.INT) -> tuple[str, str] | None:
    """``(field, reason)`` when the PE model ``pe`` does not take these operands, None when it claims them.

    ``field`` is ``weight_bits``, ``activation_bits`` or ``activation_format``.
    """
    c = pe.claims()
    if c is None:
        try:
            pe.macs_per_cycle(weight_bits, activation_bits, activation_format)
        except MappingError as exc:
            return "weight_bits/activation_bits", str(exc)
        return None
    fp = NumberFormat(activation_format) is NumberFormat.FP
    acts = c.fp_activation_bits if fp else c.int_activation_bits
    kind = "FP" if fp else "INT"
    if not acts:
        return "activation_format", f"PE type '{pe.kind}' does not take {kind} activations ({c.why})"
    for field, role, bits, allowed in (("weight_bits", "weight", weight_bits, c.weight_bits),
                                       ("activation_bits", f"{kind} activation", activation_bits, acts)):
        if bits not in allowed:
            return field, (f"PE type '{pe.kind}' does not take {bits}-bit {role}s: it takes "
                           f"{'/'.join(str(b) for b in allowed)}-bit ones ({c.why})")
    return None
