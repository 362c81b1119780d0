"""W4A8 shift-and-add multiplication of unsigned weight codes by integer activations.

MixPE replaces the multiplier by shifts and adds: for an unsigned weight code
``q = sum_b q_b 2**b`` and a signed integer activation ``x``,
``q * x = sum over set bits b of (x << b)``. The shifted copies of ``x`` for the
set bits enter one adder tree. Integer addition is associative, so the result
is exact in any order as long as the accumulator does not overflow, which is
checked before computing.
"""

from __future__ import annotations

import numpy as np


def check_codes(q: np.ndarray, bits: int) -> np.ndarray:
    """Validate unsigned ``bits``-bit weight codes; return them as an int64 array."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [1, 16], got {bits!r}")
    q = np.asarray(q)
    if not np.issubdtype(q.dtype, np.integer):
        raise TypeError(f"weight codes must be integers, got dtype {q.dtype}")
    q = q.astype(np.int64)
    if q.size and (q.min() < 0 or q.max() >= (1 << bits)):
        raise ValueError(f"weight codes must lie in [0, {(1 << bits) - 1}] for {bits} bits")
    return q


def _check_int_activations(x) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"activations must be integers for the shift-add product, got dtype {x.dtype}")
    return x.astype(np.int64)


def _check_fits(bound: int, accumulate_dtype) -> np.dtype:
    acc = np.dtype(accumulate_dtype)
    if not np.issubdtype(acc, np.signedinteger):
        raise TypeError(f"accumulate_dtype must be a signed integer type, got {acc}")
    if bound > np.iinfo(acc).max:
        raise ValueError(f"worst-case magnitude {bound} overflows the {acc} accumulator")
    return acc


def shift_add_multiply(q, x, bits: int = 4, *, accumulate_dtype=np.int32) -> np.ndarray:
    """Elementwise ``q * x`` as the sum of ``x << b`` over the set bits ``b`` of ``q``.

    Parameters
    ----------
    q:
        Unsigned weight codes in ``[0, 2**bits - 1]``, any integer dtype.
    x:
        Signed integer activations (e.g. int8); broadcast against ``q``.
    bits:
        Weight bits (number of shifted copies), 1 to 16.
    accumulate_dtype:
        Signed integer type of the adder tree and the result (default int32).

    Returns
    -------
    numpy.ndarray
        ``q * x`` in ``accumulate_dtype``, shape of the broadcast of ``q`` and ``x``.
    """
    q = check_codes(q, bits)
    x = _check_int_activations(x)
    q, x = np.broadcast_arrays(q, x)  # [...]
    max_x = int(np.abs(x).max()) if x.size else 0
    acc = _check_fits(max_x * ((1 << bits) - 1), accumulate_dtype)
    shifts = np.arange(bits, dtype=acc)  # [B]
    bit_set = ((q[..., None].astype(acc) >> shifts) & 1).astype(bool)  # [..., B]
    shifted = x[..., None].astype(acc) << shifts  # [..., B]
    assert bit_set.shape == shifted.shape == q.shape + (bits,)
    return np.where(bit_set, shifted, acc.type(0)).sum(axis=-1, dtype=acc)


def shift_add_gemm(x, q, bits: int = 4, *, accumulate_dtype=np.int32) -> np.ndarray:
    """Integer GEMM ``x @ q`` built from shift-add products, exact.

    For each weight bit ``b``, the activations are shifted left by ``b`` and
    the 0/1 bit plane ``(q >> b) & 1`` selects which shifted copies enter the
    sum (a matmul with a 0/1 matrix performs only selections and additions);
    the per-bit partial sums are then added.

    Parameters
    ----------
    x:
        Signed integer activations ``[M, K]``.
    q:
        Unsigned weight codes ``[K, N]`` in ``[0, 2**bits - 1]``.
    bits:
        Weight bits, 1 to 16.
    accumulate_dtype:
        Signed integer accumulator type (int32 as in hardware, or int64). A
        ValueError is raised if ``K * max|x| * (2**bits - 1)`` could overflow it.

    Returns
    -------
    numpy.ndarray
        ``[M, N]`` in ``accumulate_dtype``, equal to the integer matmul.
    """
    q = check_codes(q, bits)  # [K, N]
    x = _check_int_activations(x)  # [M, K]
    if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[0]:
        raise ValueError(f"shapes must be x [M, K] and q [K, N], got {x.shape} and {q.shape}")
    m, k = x.shape
    n = q.shape[1]
    max_x = int(np.abs(x).max()) if x.size else 0
    acc = _check_fits(k * max_x * ((1 << bits) - 1), accumulate_dtype)
    shifts = np.arange(bits, dtype=acc)[:, None, None]  # [B, 1, 1]
    shifted = x.astype(acc)[None, :, :] << shifts  # [B, M, K]
    planes = (q.astype(acc)[None, :, :] >> shifts) & 1  # [B, K, N]
    partial = np.matmul(shifted, planes)  # [B, M, N]
    assert shifted.shape == (bits, m, k) and planes.shape == (bits, k, n) and partial.shape == (bits, m, n)
    return partial.sum(axis=0, dtype=acc)
