"""Mixed-precision GEMM with dequantization before (baselines) or after (MixPE) the dot products.

With ``w[i, n] = s[g, n] * (q[i, n] - z[g, n])`` for row ``i`` in group ``g``,

``y[m, n] = sum_g ( s[g, n] * P[m, g, n] - s[g, n] * z[g, n] * S[m, g] )``

where ``P[m, g, n] = sum_{i in g} q[i, n] * x[m, i]`` is the low-bit group dot
product computed by the shift-add PE and ``S[m, g] = sum_{i in g} x[m, i]`` is
one reduction of the activations per group, computed once per token and shared
by every output column. Baselines instead dequantize every weight into the
activation's format and run a high-precision GEMM (:func:`gemm_dequant_first`).

Activation dtypes select the datapath: integer ``x`` is W4A8 (exact integer
group dot products by :func:`~mixpe_sys.numerics.shift_add.shift_add_gemm`),
float16 ``x`` is W4A16 (exponent-add products,
:func:`~mixpe_sys.numerics.fp16_exp.fp16_shift_add_gemm`). With an integer
``accumulate_dtype`` both functions run entirely in integers; that requires
integer ``x`` and integer-valued scales and is exact.
"""

from __future__ import annotations

import numpy as np

from .fp16_exp import fp16_shift_add_gemm
from .quantize import QuantizedWeights
from .shift_add import shift_add_gemm


def _check_x(x, qw: QuantizedWeights) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != qw.shape[0]:
        raise ValueError(f"x must have shape [M, K={qw.shape[0]}], got {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"x must be integer or floating, got dtype {x.dtype}")
    return x


def _is_int(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.integer)


def _integer_scales(qw: QuantizedWeights, x: np.ndarray) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError("integer accumulation needs integer activations")
    s = qw.scales.astype(np.float64)  # [G, N]
    if not np.array_equal(s, np.round(s)):
        raise ValueError("integer accumulation needs integer-valued scales")
    return s.astype(np.int64)


def activation_group_sums(x, group_size: int, *, accumulate_dtype=np.float32) -> np.ndarray:
    """Per-token, per-group activation sums ``S[m, g] = sum_{i in g} x[m, i]``.

    Parameters
    ----------
    x:
        Activations ``[M, K]``; integer (summed exactly in int64) or floating
        (summed in ``accumulate_dtype`` in order of increasing ``i``).
    group_size:
        Rows of K per group; must divide K.

    Returns
    -------
    numpy.ndarray
        ``[M, G]``, int64 for integer ``x`` else ``accumulate_dtype``.
    """
    x = np.asarray(x)  # [M, K]
    if x.ndim != 2 or group_size < 1 or x.shape[1] % group_size:
        raise ValueError(f"x must be [M, K] with K a multiple of group_size={group_size}, got {x.shape}")
    m, k = x.shape
    xg = x.reshape(m, k // group_size, group_size)  # [M, G, g]
    if np.issubdtype(x.dtype, np.integer):
        return xg.astype(np.int64).sum(axis=-1)
    acc = np.dtype(accumulate_dtype)
    total = np.zeros((m, k // group_size), acc)  # [M, G]
    for i in range(group_size):
        total = (total + xg[:, :, i].astype(acc)).astype(acc)
    return total


def group_dot_products(x, qw: QuantizedWeights, *, accumulate_dtype=np.float32) -> np.ndarray:
    """Low-bit group dot products ``P[m, g, n] = sum_{i in g} q[i, n] * x[m, i]``.

    Integer ``x``: shift-add products, exact, int64. float16 ``x``:
    exponent-add products accumulated in ``accumulate_dtype`` by increasing ``i``.

    Returns
    -------
    numpy.ndarray
        ``[M, G, N]``.
    """
    x = _check_x(x, qw)  # [M, K]
    m = x.shape[0]
    n = qw.shape[1]
    g = qw.group_size
    if np.issubdtype(x.dtype, np.integer):
        parts = [shift_add_gemm(x[:, j * g:(j + 1) * g], qw.q[j * g:(j + 1) * g], qw.bits,
                                accumulate_dtype=np.int64) for j in range(qw.num_groups)]
    elif x.dtype == np.float16:
        parts = [fp16_shift_add_gemm(x[:, j * g:(j + 1) * g], qw.q[j * g:(j + 1) * g], qw.bits,
                                     accumulate_dtype=accumulate_dtype) for j in range(qw.num_groups)]
    else:
        raise TypeError(f"post-GEMM dequant takes integer (W*A8) or float16 (W*A16) activations, got {x.dtype}")
    p = np.stack(parts, axis=1)  # [M, G, N]
    assert p.shape == (m, qw.num_groups, n)
    return p


def gemm_post_dequant(x, qw: QuantizedWeights, *, accumulate_dtype=np.float32) -> np.ndarray:
    """MixPE mpGEMM: group dot products on the codes, then one dequant per group.

    ``y = sum_g (s * P - (s * z) * S)`` with ``P`` from
    :func:`group_dot_products` and ``S`` from :func:`activation_group_sums`;
    ``s * z`` is formed once per (group, column). Groups are added in order of
    increasing ``g``, each operation rounded to ``accumulate_dtype``.

    Parameters
    ----------
    x:
        Activations ``[M, K]``: integer (W4A8) or float16 (W4A16).
    qw:
        Quantized weights ``[K, N]``.
    accumulate_dtype:
        float32 (default) or float16; or a signed integer type for an exact
        all-integer run (needs integer ``x`` and integer-valued scales).

    Returns
    -------
    numpy.ndarray
        ``[M, N]`` in ``accumulate_dtype``.
    """
    x = _check_x(x, qw)  # [M, K]
    acc = np.dtype(accumulate_dtype)
    m = x.shape[0]
    n = qw.shape[1]
    if _is_int(acc):
        s = _integer_scales(qw, x)  # [G, N]
        p = group_dot_products(x, qw)  # [M, G, N] int64
        sums = activation_group_sums(x, qw.group_size)  # [M, G] int64
        sz = s * qw.zeros.astype(np.int64)  # [G, N]
        bound = float((np.abs(p.astype(np.float64)) * s
                       + np.abs(sums.astype(np.float64))[:, :, None] * sz).sum(axis=1).max())
        if bound > np.iinfo(acc).max:
            raise ValueError(f"worst-case magnitude {bound:.3g} overflows the {acc} accumulator")
        y = (s[None] * p - sz[None] * sums[:, :, None]).sum(axis=1)  # [M, N]
        assert y.shape == (m, n)
        return y.astype(acc)
    if not np.issubdtype(acc, np.floating):
        raise TypeError(f"accumulate_dtype must be floating or signed integer, got {acc}")
    p = group_dot_products(x, qw, accumulate_dtype=acc).astype(acc)  # [M, G, N]
    sums = activation_group_sums(x, qw.group_size, accumulate_dtype=acc).astype(acc)  # [M, G]
    s = qw.scales.astype(acc)  # [G, N]
    sz = (s * qw.zeros.astype(acc)).astype(acc)  # [G, N]
    assert p.shape == (m, qw.num_groups, n) and sums.shape == (m, qw.num_groups)
    y = np.zeros((m, n), acc)  # [M, N]
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(qw.num_groups):
            term = (s[j] * p[:, j, :]).astype(acc) - (sz[j] * sums[:, j, None]).astype(acc)  # [M, N]
            y = (y + term.astype(acc)).astype(acc)
    return y


def gemm_dequant_first(x, qw: QuantizedWeights, *, weight_dtype=np.float16,
                       accumulate_dtype=np.float32) -> np.ndarray:
    """Baseline mpGEMM: dequantize every weight, then a high-precision GEMM.

    Weights are dequantized exactly and rounded once to ``weight_dtype`` (FP16
    as in TensorRT-LLM W4A16), then ``x`` and the weights are converted to
    ``accumulate_dtype`` and multiplied with ``numpy.matmul`` (BLAS; its
    summation order is not specified, so the result is bounded by the usual
    ``K * eps`` error, not fixed).

    Parameters
    ----------
    x:
        Activations ``[M, K]``, integer or floating.
    qw:
        Quantized weights ``[K, N]``.
    weight_dtype:
        Format the weights are dequantized into (ignored for integer accumulation).
    accumulate_dtype:
        float32 (default), float64, or a signed integer type for an exact
        all-integer run (needs integer ``x`` and integer-valued scales).

    Returns
    -------
    numpy.ndarray
        ``[M, N]`` in ``accumulate_dtype``.
    """
    x = _check_x(x, qw)  # [M, K]
    acc = np.dtype(accumulate_dtype)
    if _is_int(acc):
        s = _integer_scales(qw, x)  # [G, N]
        w = np.repeat(s, qw.group_size, axis=0) * qw.centered_codes()  # [K, N] int64
        bound = float((np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))).max())
        if bound > np.iinfo(acc).max:
            raise ValueError(f"worst-case magnitude {bound:.3g} overflows the {acc} accumulator")
        y = x.astype(np.int64) @ w  # [M, N]
    else:
        if not np.issubdtype(acc, np.floating):
            raise TypeError(f"accumulate_dtype must be floating or signed integer, got {acc}")
        w = qw.dequantize(weight_dtype).astype(acc)  # [K, N]
        y = x.astype(acc) @ w  # [M, N]
    assert y.shape == (x.shape[0], qw.shape[1])
    return y.astype(acc)
