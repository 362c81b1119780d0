"""Quantization signal-to-noise ratio: the numerical-fidelity axis of design-space exploration.

The error measured is that of the number formats only: the quantized weights
and activations are dequantized exactly and multiplied in float64, so the
arithmetic of a particular PE (FP16/FP32 rounding, far smaller) does not enter.
"""

from __future__ import annotations

import enum

import numpy as np

from .minifloat import E4M3_MAX, round_to_minifloat
from .quantize import quantize_activations, quantize_weights


class SnrTarget(str, enum.Enum):
    """What the SNR is measured on."""

    OUTPUT = "output"  # the GEMM output y = x @ w
    WEIGHTS = "weights"  # the weights themselves


def snr_db(reference, approximation) -> float:
    """``10 * log10(sum(reference**2) / sum((reference - approximation)**2))`` in dB.

    Returns ``inf`` when the approximation is exact. Raises ValueError if the
    shapes differ or the reference has zero power.
    """
    ref = np.asarray(reference, dtype=np.float64)
    approx = np.asarray(approximation, dtype=np.float64)
    if ref.shape != approx.shape:
        raise ValueError(f"shapes differ: {ref.shape} and {approx.shape}")
    signal = float(np.sum(ref * ref))
    if not signal > 0:
        raise ValueError("reference has zero signal power")
    diff = ref - approx
    noise = float(np.sum(diff * diff))
    if noise == 0:
        return float("inf")
    return 10.0 * float(np.log10(signal / noise))


def _format_name(fmt) -> str:
    name = str(getattr(fmt, "value", fmt)).lower()
    if name not in ("int", "fp"):
        raise ValueError(f"activation_format must be 'int' or 'fp', got {fmt!r}")
    return name


def fake_quantize_weights(w, bits: int, group_size: int) -> np.ndarray:
    """Weights ``[K, N]`` after quantization and exact dequantization, float64.

    ``bits`` below 16: group-wise asymmetric integer (:func:`quantize_weights`,
    ``group_size = 0`` = one group per output column); 16: FP16; 32: FP32.
    """
    w = np.asarray(w, dtype=np.float64)  # [K, N]
    if bits == 16:
        return _round_float(w, np.float16, "weights")
    if bits == 32:
        return _round_float(w, np.float32, "weights")
    if not 1 <= bits < 16:
        raise ValueError(f"weight_bits must be 1..15 (integer), 16 (FP16) or 32 (FP32), got {bits}")
    return quantize_weights(w, bits, group_size).dequantize(np.float64)


def fake_quantize_activations(x, bits: int, fmt) -> np.ndarray:
    """Activations ``[M, K]`` after quantization and exact dequantization, float64.

    ``fmt`` ``'int'``: symmetric per-token integer with ``bits`` bits (2..16).
    ``'fp'``: 16 = FP16, 32 = FP32, 8 = FP8 E4M3 with a per-token float32 scale
    mapping each token's maximum magnitude to 448.
    """
    x = np.asarray(x, dtype=np.float64)  # [M, K]
    if _format_name(fmt) == "int":
        return quantize_activations(x, bits, per_token=True).dequantize(np.float64)
    if bits == 16:
        return _round_float(x, np.float16, "activations")
    if bits == 32:
        return _round_float(x, np.float32, "activations")
    if bits == 8:
        amax = np.abs(x).max(axis=1, keepdims=True)  # [M, 1]
        scale = (amax / E4M3_MAX).astype(np.float32).astype(np.float64)
        scale = np.where(scale > 0, scale, 1.0)
        return round_to_minifloat(x / scale, 4, 3, max_value=E4M3_MAX, saturate=True) * scale
    raise ValueError(f"FP activations must be 8, 16 or 32 bits, got {bits}")


def _round_float(a: np.ndarray, dtype, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        r = a.astype(dtype)
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{what} overflow {np.dtype(dtype).name}")
    return r.astype(np.float64)


def quantization_snr_db(weights, scheme, *, activations=None, num_tokens: int = 64, seed: int = 0,
                        target: SnrTarget | str = SnrTarget.OUTPUT) -> float:
    """SNR in dB of a GEMM output (or the weights) after quantizing with ``scheme``.

    Parameters
    ----------
    weights:
        Weights ``[K, N]`` (K = reduction dimension), finite.
    scheme:
        Any object with ``weight_bits``, ``activation_bits``,
        ``activation_format`` (``'int'``/``'fp'`` or an enum whose ``value`` is
        one of them) and ``group_size`` (0 = one group per output column), e.g.
        :class:`mixpe_sys.workload.quant.QuantScheme`.
    activations:
        Activations ``[M, K]``; if None, ``num_tokens`` rows of standard normal
        values are drawn from ``numpy.random.default_rng(seed)``.
    num_tokens:
        Rows of generated activations.
    seed:
        Seed for the generated activations (the result is deterministic).
    target:
        ``'output'``: compare ``x @ w`` with ``x_hat @ w_hat``; ``'weights'``:
        compare ``w`` with ``w_hat`` (activations unused).

    Returns
    -------
    float
        ``10 * log10(signal power / error power)`` in dB; ``inf`` if lossless.
    """
    target = SnrTarget(target)
    w = np.asarray(weights, dtype=np.float64)  # [K, N]
    if w.ndim != 2:
        raise ValueError(f"weights must be [K, N], got shape {w.shape}")
    k = w.shape[0]
    w_hat = fake_quantize_weights(w, int(scheme.weight_bits), int(scheme.group_size))  # [K, N]
    assert w_hat.shape == w.shape
    if target is SnrTarget.WEIGHTS:
        return snr_db(w, w_hat)
    if activations is None:
        x = np.random.default_rng(seed).standard_normal((num_tokens, k))  # [M, K]
    else:
        x = np.asarray(activations, dtype=np.float64)  # [M, K]
        if x.ndim != 2 or x.shape[1] != k:
            raise ValueError(f"activations must be [M, K={k}], got shape {x.shape}")
    x_hat = fake_quantize_activations(x, int(scheme.activation_bits), scheme.activation_format)  # [M, K]
    assert x_hat.shape == x.shape
    return snr_db(x @ w, x_hat @ w_hat)
