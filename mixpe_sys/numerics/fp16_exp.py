"""W4A16 product by FP16 exponent addition: ``x * 2**b`` without a multiplier.

An IEEE binary16 value has 1 sign bit, a 5-bit exponent field ``E`` (bias 15)
and a 10-bit fraction ``F``. For a normal ``x`` (``1 <= E <= 30``),
``x * 2**b`` is ``x`` with ``b`` added to ``E``; a result field of 31 or more
overflows to a signed infinity. Zeros, infinities and NaNs pass through
unchanged. A subnormal ``x = F * 2**-24`` is normalised exactly with a
leading-one detector: it stays subnormal (``F << b``) while ``F << b < 1024``,
else becomes normal. No path rounds, because ``b >= 0`` only scales.

``q * x`` for an unsigned weight code ``q`` is then the FP16 sum of the
``x * 2**b`` over the set bits of ``q``. Summation order: bit 0 first, then
bit 1, ..., each addition rounded to FP16 (round to nearest even). NumPy adds
float16 values in float32 and rounds the sum to float16; because 24 >= 2*11+2
that double rounding equals one correctly rounded FP16 addition. The partial
sums can round, so the result may differ from the correctly rounded
``float16(q * x)`` by about one unit in the last place when ``q`` has two or more
set bits, and a hardware adder tree that pairs the terms differently may round
differently again.
"""

from __future__ import annotations

import numpy as np

from .shift_add import check_codes

_SIGN_MASK = 0x8000
_FRACTION_MASK = 0x03FF
_FRACTION_BITS = 10
_EXPONENT_ALL_ONES = 0x1F
_INF_BITS = 0x7C00
# Shifts above this overflow every finite input (2**-24 * 2**40 > 65504);
# clamping keeps the integer arithmetic below from overflowing int64.
_MAX_USEFUL_SHIFT = 40


def _check_fp16(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.float16:
        raise TypeError(f"activations must be float16, got dtype {x.dtype}")
    return x


def fp16_mul_pow2(x, b) -> np.ndarray:
    """``x * 2**b`` for float16 ``x`` by adding ``b`` to the exponent field.

    Parameters
    ----------
    x:
        float16 array (any shape).
    b:
        Non-negative integer shift(s), broadcast against ``x``.

    Returns
    -------
    numpy.ndarray
        float16, bit-identical to ``float16(x * 2**b)`` (IEEE round to nearest;
        no rounding actually occurs): signed zeros kept, overflow to a signed
        infinity, infinities and NaNs (with their payload) passed through.
    """
    x = _check_fp16(x)
    b = np.asarray(b)
    if not np.issubdtype(b.dtype, np.integer):
        raise TypeError(f"shift b must be an integer, got dtype {b.dtype}")
    if b.size and b.min() < 0:
        raise ValueError("shift b must be non-negative")
    x, b = np.broadcast_arrays(x, b)  # [...]
    bits = np.ascontiguousarray(x).view(np.uint16).astype(np.int64)  # [...]
    shift = np.minimum(b.astype(np.int64), _MAX_USEFUL_SHIFT)  # [...]
    sign = bits & _SIGN_MASK
    exponent = (bits >> _FRACTION_BITS) & _EXPONENT_ALL_ONES
    fraction = bits & _FRACTION_MASK
    signed_inf = sign | _INF_BITS

    # Normal input: add the shift to the exponent field.
    new_exponent = exponent + shift
    normal = np.where(new_exponent >= _EXPONENT_ALL_ONES, signed_inf,
                      sign | (new_exponent << _FRACTION_BITS) | fraction)

    # Subnormal input F * 2**-24, F in [1, 1023]: lead = position of the leading one of F.
    lead = ((fraction[..., None] >> np.arange(1, _FRACTION_BITS)) != 0).sum(axis=-1)  # [...]
    shifted_fraction = fraction << shift
    stays_subnormal = shifted_fraction <= _FRACTION_MASK
    # F * 2**(b-24) = 2**(lead+b-24) * (F / 2**lead), i.e. exponent field lead + b - 9.
    sub_exponent = lead + shift - (_FRACTION_BITS - 1)
    sub_fraction = (fraction - (1 << lead)) << (_FRACTION_BITS - lead)
    sub_normalised = np.where(sub_exponent >= _EXPONENT_ALL_ONES, signed_inf,
                              sign | (sub_exponent << _FRACTION_BITS) | sub_fraction)
    subnormal = np.where(stays_subnormal, sign | shifted_fraction, sub_normalised)

    out = np.where(exponent == _EXPONENT_ALL_ONES, bits,  # inf / NaN
                   np.where(exponent == 0,
                            np.where(fraction == 0, bits, subnormal),  # signed zero / subnormal
                            normal))
    assert out.shape == x.shape
    return out.astype(np.uint16).view(np.float16)


def fp16_shift_add_multiply(q, x, bits: int = 4) -> np.ndarray:
    """``q * x`` for weight codes ``q`` and float16 ``x`` by exponent-add and FP16 sums.

    Parameters
    ----------
    q:
        Unsigned weight codes in ``[0, 2**bits - 1]``.
    x:
        float16 activations, broadcast against ``q``.
    bits:
        Weight bits, 1 to 16.

    Returns
    -------
    numpy.ndarray
        float16 sum of ``x * 2**b`` over the set bits ``b`` of ``q``, added in
        order of increasing ``b`` starting from a zero with the sign of ``x``
        (so ``q = 0`` gives ``+-0``, the IEEE sign of ``0 * x`` for finite
        ``x``; a zero weight contributes nothing even when ``x`` is inf/NaN).
        With one set bit the result is exact; otherwise see the module notes.
    """
    q = check_codes(q, bits)
    x = _check_fp16(x)
    q, x = np.broadcast_arrays(q, x)  # [...]
    shifts = np.arange(bits)  # [B]
    terms = fp16_mul_pow2(x[..., None], shifts)  # [..., B]
    bit_set = ((q[..., None] >> shifts) & 1).astype(bool)  # [..., B]
    assert terms.shape == bit_set.shape == q.shape + (bits,)
    total = np.copysign(np.zeros(x.shape, np.float16), x)  # [...]
    with np.errstate(over="ignore", invalid="ignore"):
        for b in range(bits):
            total = np.where(bit_set[..., b], total + terms[..., b], total)
    return total.astype(np.float16)


def fp16_shift_add_gemm(x, q, bits: int = 4, *, accumulate_dtype=np.float32,
                        chunk_elements: int = 1 << 20) -> np.ndarray:
    """mpGEMM ``x @ q`` with float16 ``x`` and integer codes ``q`` (W4A16 shift-add PE).

    Each product is formed by :func:`fp16_shift_add_multiply`; products are
    added to the accumulator in order of increasing ``k`` (k = 0 first), each
    addition rounded to ``accumulate_dtype`` (float32 by default, float16 for an
    all-FP16 datapath).

    Parameters
    ----------
    x:
        float16 activations ``[M, K]``.
    q:
        Weight codes ``[K, N]`` in ``[0, 2**bits - 1]``.
    bits:
        Weight bits, 1 to 16.
    accumulate_dtype:
        Floating accumulator type.
    chunk_elements:
        Products formed per step (memory bound only; does not change results).

    Returns
    -------
    numpy.ndarray
        ``[M, N]`` in ``accumulate_dtype``.
    """
    x = _check_fp16(x)  # [M, K]
    q = check_codes(q, bits)  # [K, N]
    if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[0]:
        raise ValueError(f"shapes must be x [M, K] and q [K, N], got {x.shape} and {q.shape}")
    acc = np.dtype(accumulate_dtype)
    if not np.issubdtype(acc, np.floating):
        raise TypeError(f"accumulate_dtype must be a floating type, got {acc}")
    m, k = x.shape
    n = q.shape[1]
    total = np.zeros((m, n), acc)  # [M, N]
    step = max(1, chunk_elements // max(1, m * n * bits))
    with np.errstate(over="ignore", invalid="ignore"):
        for k0 in range(0, k, step):
            k1 = min(k, k0 + step)
            products = fp16_shift_add_multiply(q[None, k0:k1, :], x[:, k0:k1, None], bits)  # [M, kc, N]
            assert products.shape == (m, k1 - k0, n)
            for j in range(k1 - k0):
                total = (total + products[:, j, :].astype(acc)).astype(acc)
    return total
