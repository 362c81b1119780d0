"""Rounding to small binary floating-point formats (FP16, FP8 E4M3, ...).

Used to model floating-point activations whose format NumPy lacks (FP8). The
format has ``exponent_bits`` exponent bits with bias ``2**(exponent_bits-1) - 1``,
``mantissa_bits`` fraction bits, gradual underflow (subnormals) and round to
nearest, ties to even.
"""

from __future__ import annotations

import numpy as np


def max_finite(exponent_bits: int, mantissa_bits: int) -> float:
    """Largest finite value of the IEEE-style format (top exponent code reserved for inf/NaN)."""
    bias = (1 << (exponent_bits - 1)) - 1
    max_exponent = (1 << exponent_bits) - 2 - bias
    return (2.0 - 2.0 ** -mantissa_bits) * 2.0 ** max_exponent


E4M3_MAX = 448.0
"""Largest finite FP8 E4M3 value (OCP 'FN' variant: only one NaN code, no infinities)."""


def round_to_minifloat(x, exponent_bits: int, mantissa_bits: int, *,
                       max_value: float | None = None, saturate: bool = False) -> np.ndarray:
    """Round ``x`` to the nearest value of a small binary float format, returned as float64.

    Parameters
    ----------
    x:
        Values (any shape, real dtype), converted to float64 first.
    exponent_bits, mantissa_bits:
        Format widths, e.g. ``(5, 10)`` for FP16 and ``(4, 3)`` for FP8 E4M3.
    max_value:
        Largest finite magnitude; defaults to the IEEE-style :func:`max_finite`
        (pass :data:`E4M3_MAX` for E4M3).
    saturate:
        Clamp overflowing values to ``+-max_value`` instead of returning ``+-inf``.

    Returns
    -------
    numpy.ndarray
        float64 array of representable values (NaN stays NaN). Rounding is to
        nearest even on the format's grid, and a value that rounds above
        ``max_value`` overflows, as in IEEE 754.
    """
    if not (2 <= exponent_bits <= 11 and 0 <= mantissa_bits <= 52):
        raise ValueError(f"unsupported format E{exponent_bits}M{mantissa_bits}")
    top = max_finite(exponent_bits, mantissa_bits) if max_value is None else float(max_value)
    bias = (1 << (exponent_bits - 1)) - 1
    min_exponent = 1 - bias
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    with np.errstate(invalid="ignore", over="ignore"):
        _, e2 = np.frexp(a)  # a = f * 2**e2, f in [0.5, 1)
        exponent = np.maximum(e2.astype(np.int64) - 1, min_exponent)  # floor(log2 a), or the subnormal exponent
        quantum = np.ldexp(1.0, exponent - mantissa_bits)
        r = np.rint(a / quantum) * quantum  # both steps exact: scaling by powers of two
        r = np.where(r > top, top if saturate else np.inf, r)
        r = np.where(np.isnan(a), np.nan, r)
    return np.copysign(r, x)
