"""Group-wise asymmetric weight quantization and symmetric activation quantization.

A weight matrix ``W`` of shape ``[K, N]`` (``K`` = reduction dimension, ``N`` =
output columns) is cut along ``K`` into groups of ``group_size`` rows. Each
(group, column) pair gets an FP16 scale ``s`` and an integer zero point ``z`` in
``[0, 2**bits - 1]``, and each weight an unsigned ``bits``-bit code
``q = clip(round(w / s) + z, 0, 2**bits - 1)``, so that ``w ~= s * (q - z)``.
Rounding is round-half-to-even (``numpy.rint``) throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_WEIGHT_BITS = 16
MAX_ACTIVATION_BITS = 16


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _check_bits(bits: int, low: int, high: int, what: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not low <= bits <= high:
        raise ValueError(f"{what} must be an integer in [{low}, {high}], got {bits!r}")
    return int(bits)


def code_dtype(bits: int) -> type:
    """Smallest unsigned NumPy integer type that holds ``bits``-bit codes (uint8 or uint16)."""
    return np.uint8 if bits <= 8 else np.uint16


def _as_float_matrix(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinity")
    return a


@dataclass(frozen=True, eq=False)
class QuantizedWeights:
    """Group-wise asymmetric quantized weights, ``w ~= scales * (q - zeros)``.

    Parameters
    ----------
    q:
        ``[K, N]`` unsigned integer codes in ``[0, 2**bits - 1]`` (stored as uint8,
        or uint16 above 8 bits).
    scales:
        ``[G, N]`` positive finite scales, ``G = K // group_size``; stored as
        float16 (a value not exactly representable in float16 is an error).
    zeros:
        ``[G, N]`` integer zero points in ``[0, 2**bits - 1]`` (same dtype as ``q``).
    bits:
        Bits per weight code, 1 to 16.
    group_size:
        Rows of ``K`` per group (``K`` for one group per output column).

    The arrays are copied and made read-only on construction.
    """

    q: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray
    bits: int
    group_size: int

    def __post_init__(self) -> None:
        bits = _check_bits(self.bits, 1, MAX_WEIGHT_BITS, "bits")
        qmax = (1 << bits) - 1
        q = np.asarray(self.q)  # [K, N]
        if q.ndim != 2 or q.size == 0 or not np.issubdtype(q.dtype, np.integer):
            raise ValueError(f"q must be a non-empty 2-D integer array, got shape {q.shape} dtype {q.dtype}")
        k, n = q.shape
        g = self.group_size
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1 or k % g:
            raise ValueError(f"group_size must be a positive divisor of K={k}, got {g!r}")
        num_groups = k // int(g)
        if q.min() < 0 or q.max() > qmax:
            raise ValueError(f"q codes must lie in [0, {qmax}] for {bits} bits")
        scales = np.asarray(self.scales)  # [G, N]
        zeros = np.asarray(self.zeros)  # [G, N]
        for name, a in (("scales", scales), ("zeros", zeros)):
            if a.shape != (num_groups, n):
                raise ValueError(f"{name} must have shape [G, N] = {(num_groups, n)}, got {a.shape}")
        if not np.issubdtype(scales.dtype, np.floating) and not np.issubdtype(scales.dtype, np.integer):
            raise TypeError(f"scales must be numeric, got dtype {scales.dtype}")
        scales64 = scales.astype(np.float64)
        if not np.all(np.isfinite(scales64)) or np.any(scales64 <= 0):
            raise ValueError("scales must be positive and finite")
        scales16 = scales.astype(np.float16)
        if not np.array_equal(scales16.astype(np.float64), scales64):
            raise ValueError("scales must be exactly representable in float16")
        if not np.issubdtype(zeros.dtype, np.integer) or zeros.min() < 0 or zeros.max() > qmax:
            raise ValueError(f"zeros must be integers in [0, {qmax}] for {bits} bits")
        dt = code_dtype(bits)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "group_size", int(g))
        object.__setattr__(self, "q", _readonly(q.astype(dt)))
        object.__setattr__(self, "scales", _readonly(scales16))
        object.__setattr__(self, "zeros", _readonly(zeros.astype(dt)))

    @property
    def shape(self) -> tuple[int, int]:
        """``(K, N)``."""
        return self.q.shape

    @property
    def num_groups(self) -> int:
        """Groups along K, ``G = K // group_size``."""
        return self.q.shape[0] // self.group_size

    def centered_codes(self) -> np.ndarray:
        """``q - z`` broadcast over each group, as int64, shape ``[K, N]``."""
        k, n = self.shape
        q = self.q.reshape(self.num_groups, self.group_size, n).astype(np.int64)  # [G, g, N]
        c = q - self.zeros.astype(np.int64)[:, None, :]  # [G, g, N]
        return c.reshape(k, n)

    def dequantize(self, dtype=np.float64) -> np.ndarray:
        """Dequantized weights ``s * (q - z)``, shape ``[K, N]``.

        The product is formed exactly in float64 (an FP16 scale times an integer
        of at most 17 bits fits in 53 bits) and rounded once to ``dtype``; with
        the default float64 (or float32 for ``bits <= 13``) it is exact.
        """
        s = np.repeat(self.scales.astype(np.float64), self.group_size, axis=0)  # [K, N]
        w = s * self.centered_codes()  # [K, N]
        assert w.shape == self.shape
        return w.astype(dtype)


def quantize_weights(w, bits: int = 4, group_size: int = 128) -> QuantizedWeights:
    """Quantize ``w`` (``[K, N]``, any real dtype) group-wise along K, asymmetric.

    Per (group, column), the range ``[min(w_min, 0), max(w_max, 0)]`` (so that
    0 is always exactly representable and ``z`` lies in ``[0, 2**bits - 1]``)
    is mapped onto the codes: ``s = float16(range / (2**bits - 1))``,
    ``z = clip(rint(-min / s), 0, 2**bits - 1)``, ``q = clip(rint(w / s) + z, 0,
    2**bits - 1)``, with the FP16-rounded scale used for ``z`` and ``q``. An
    all-zero group gets ``s = 1, z = 0``; a nonzero range whose scale underflows
    FP16 uses the smallest FP16 subnormal, 2**-24.

    Parameters
    ----------
    w:
        Weights ``[K, N]`` (K = reduction dimension), finite.
    bits:
        Bits per code, 1 to 16.
    group_size:
        Rows of K per group; must divide K. ``0`` means one group per output
        column (``group_size = K``).

    Raises
    ------
    ValueError
        If K is not a multiple of ``group_size``, ``w`` is not a finite 2-D
        array, or a group's range needs a scale above the FP16 maximum.
    """
    bits = _check_bits(bits, 1, MAX_WEIGHT_BITS, "bits")
    w = _as_float_matrix(w, "w")  # [K, N]
    k, n = w.shape
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 0:
        raise ValueError(f"group_size must be a non-negative integer, got {group_size!r}")
    g = k if group_size == 0 else int(group_size)
    if k % g:
        raise ValueError(f"K={k} is not a multiple of group_size={g}")
    num_groups = k // g
    qmax = (1 << bits) - 1

    wg = w.reshape(num_groups, g, n)  # [G, g, N]
    w_min = np.minimum(wg.min(axis=1), 0.0)  # [G, N]
    w_max = np.maximum(wg.max(axis=1), 0.0)  # [G, N]
    span = w_max - w_min  # [G, N]
    with np.errstate(over="ignore"):
        scales = (span / qmax).astype(np.float16)  # [G, N]
    if not np.all(np.isfinite(scales)):
        raise ValueError("weight range too large for an FP16 scale (above 65504 per code step)")
    tiny = np.float16(2.0 ** -24)
    scales = np.where(span > 0, np.maximum(scales, tiny), np.float16(1.0)).astype(np.float16)
    s = scales.astype(np.float64)  # [G, N]
    zeros = np.clip(np.rint(-w_min / s), 0, qmax)  # [G, N]
    q = np.clip(np.rint(wg / s[:, None, :]) + zeros[:, None, :], 0, qmax)  # [G, g, N]
    assert q.shape == (num_groups, g, n) and zeros.shape == scales.shape == (num_groups, n)
    dt = code_dtype(bits)
    return QuantizedWeights(q.reshape(k, n).astype(dt), scales, zeros.astype(dt), bits, g)


@dataclass(frozen=True, eq=False)
class QuantizedActivations:
    """Symmetric integer activations, ``x ~= q * scales``.

    Parameters
    ----------
    q:
        ``[M, K]`` signed codes in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``
        (int8, or int16 above 8 bits).
    scales:
        float32 scales, ``[M, 1]`` (per token) or ``[1, 1]`` (per tensor).
    bits:
        Bits per code, 2 to 16.
    """

    q: np.ndarray
    scales: np.ndarray
    bits: int

    def __post_init__(self) -> None:
        bits = _check_bits(self.bits, 2, MAX_ACTIVATION_BITS, "bits")
        qmax = (1 << (bits - 1)) - 1
        q = np.asarray(self.q)  # [M, K]
        if q.ndim != 2 or q.size == 0 or not np.issubdtype(q.dtype, np.integer):
            raise ValueError(f"q must be a non-empty 2-D integer array, got shape {q.shape} dtype {q.dtype}")
        if np.abs(q.astype(np.int64)).max() > qmax:
            raise ValueError(f"q codes must lie in [-{qmax}, {qmax}] for {bits} bits")
        scales = np.asarray(self.scales)
        if scales.shape not in ((q.shape[0], 1), (1, 1)):
            raise ValueError(f"scales must have shape [M, 1] or [1, 1], got {scales.shape}")
        scales32 = scales.astype(np.float32)
        if not np.all(np.isfinite(scales32)) or np.any(scales32 <= 0):
            raise ValueError("scales must be positive and finite")
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "q", _readonly(q.astype(np.int8 if bits <= 8 else np.int16)))
        object.__setattr__(self, "scales", _readonly(scales32))

    def dequantize(self, dtype=np.float64) -> np.ndarray:
        """``q * scales``, shape ``[M, K]``, exact in float64 and rounded once to ``dtype``."""
        x = self.q.astype(np.float64) * self.scales.astype(np.float64)  # [M, K]
        assert x.shape == self.q.shape
        return x.astype(dtype)


def quantize_activations(x, bits: int = 8, per_token: bool = True) -> QuantizedActivations:
    """Symmetric integer quantization of activations ``x`` (``[M, K]``, M = tokens).

    ``s = float32(max|x| / (2**(bits-1) - 1))`` per token (row) or per tensor,
    ``q = clip(rint(x / s), -qmax, qmax)``; the most negative code is unused so
    the range is symmetric. An all-zero row (or tensor) gets ``s = 1``.

    Parameters
    ----------
    x:
        Activations ``[M, K]``, finite, any real dtype.
    bits:
        Bits per code, 2 to 16 (8 for INT8).
    per_token:
        One scale per row if True, else one scale for the whole tensor.
    """
    bits = _check_bits(bits, 2, MAX_ACTIVATION_BITS, "bits")
    x = _as_float_matrix(x, "x")  # [M, K]
    qmax = (1 << (bits - 1)) - 1
    amax = np.abs(x).max(axis=1, keepdims=True) if per_token else np.abs(x).max(keepdims=True)  # [M|1, 1]
    scales = (amax / qmax).astype(np.float32)
    scales = np.where(scales > 0, scales, np.float32(1.0))
    q = np.clip(np.rint(x / scales.astype(np.float64)), -qmax, qmax)  # [M, K]
    assert q.shape == x.shape
    return QuantizedActivations(q.astype(np.int64), scales, bits)
