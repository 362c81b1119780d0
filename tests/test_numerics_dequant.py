"""Post-GEMM per-group dequantization (MixPE) versus dequantize-first GEMM (baselines)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.numerics import (QuantizedWeights, activation_group_sums, gemm_dequant_first, gemm_post_dequant,
                                group_dot_products, quantize_weights)

U16 = 2.0 ** -11
U32 = 2.0 ** -24


def _hand_case():
    # K = 4, two groups of 2, one column. w = s (q - z) = [2(1-1), 2(2-1), 3(3-2), 3(0-2)] = [0, 2, 3, -6].
    q = np.array([[1], [2], [3], [0]], np.uint8)
    qw = QuantizedWeights(q, np.array([[2.0], [3.0]], np.float16), np.array([[1], [2]], np.uint8), 4, 2)
    x = np.array([[1, 2, 3, 4]], np.int8)
    return x, qw


def test_hand_computed_pieces():
    x, qw = _hand_case()
    # P = [1*1 + 2*2, 3*3 + 4*0] = [5, 9]; S = [1 + 2, 3 + 4] = [3, 7].
    np.testing.assert_array_equal(group_dot_products(x, qw), [[[5], [9]]])
    np.testing.assert_array_equal(activation_group_sums(x, 2), [[3, 7]])
    # y = 2*5 - 2*1*3 + 3*9 - 3*2*7 = 10 - 6 + 27 - 42 = -11 = 1*0 + 2*2 + 3*3 + 4*(-6).
    for acc in (np.int64, np.int32, np.float32, np.float16):
        assert gemm_post_dequant(x, qw, accumulate_dtype=acc).tolist() == [[-11]]
        assert gemm_dequant_first(x, qw, accumulate_dtype=acc).tolist() == [[-11]]


def test_activation_sums_are_shared_by_all_columns():
    # S depends only on x: the same [M, G] array serves any number of output columns.
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(3, 8)).astype(np.int8)
    s = activation_group_sums(x, 4)
    assert s.shape == (3, 2)
    np.testing.assert_array_equal(s, [[row[:4].sum(), row[4:].sum()] for row in x.astype(np.int64)])
    xf = x.astype(np.float16)
    np.testing.assert_array_equal(activation_group_sums(xf, 4), s)


@st.composite
def integer_cases(draw):
    bits = draw(st.integers(1, 8))
    g = draw(st.sampled_from([1, 2, 4, 8, 16, 32]))
    groups, m, n = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = groups * g
    q = rng.integers(0, 2**bits, size=(k, n))
    scales = rng.integers(1, 9, size=(groups, n)).astype(np.float16)  # integer scales: an all-integer datapath
    zeros = rng.integers(0, 2**bits, size=(groups, n))
    x = rng.integers(-128, 128, size=(m, k)).astype(np.int8)
    return x, QuantizedWeights(q, scales, zeros, bits, g)


@settings(max_examples=40, deadline=None)
@given(integer_cases())
def test_integer_post_dequant_equals_dequant_first_exactly(case):
    x, qw = case
    post = gemm_post_dequant(x, qw, accumulate_dtype=np.int64)
    first = gemm_dequant_first(x, qw, accumulate_dtype=np.int64)
    # Independent reference in Python integers: w[i, n] = s (q - z) row by row.
    k, n = qw.shape
    w = np.array([[int(qw.scales[i // qw.group_size, c]) * (int(qw.q[i, c]) - int(qw.zeros[i // qw.group_size, c]))
                   for c in range(n)] for i in range(k)], dtype=object)
    expected = (x.astype(object) @ w).astype(np.int64)
    assert post.dtype == first.dtype == np.int64
    np.testing.assert_array_equal(post, expected)
    np.testing.assert_array_equal(first, expected)
    # The integer pieces themselves.
    p = group_dot_products(x, qw)  # [M, G, N]
    xg = x.astype(np.int64).reshape(x.shape[0], qw.num_groups, qw.group_size)  # [M, G, g]
    qg = qw.q.astype(np.int64).reshape(qw.num_groups, qw.group_size, n)  # [G, g, N]
    np.testing.assert_array_equal(p, np.einsum("mgi,gin->mgn", xg, qg))


def test_integer_mode_requires_integer_scales_and_activations():
    x, qw = _hand_case()
    frac = QuantizedWeights(qw.q, np.array([[0.5], [3.0]], np.float16), qw.zeros, 4, 2)
    with pytest.raises(ValueError, match="integer-valued"):
        gemm_post_dequant(x, frac, accumulate_dtype=np.int64)
    with pytest.raises(ValueError, match="integer-valued"):
        gemm_dequant_first(x, frac, accumulate_dtype=np.int64)
    with pytest.raises(TypeError):
        gemm_post_dequant(x.astype(np.float16), qw, accumulate_dtype=np.int64)


def test_bad_activation_shapes_and_types():
    x, qw = _hand_case()
    with pytest.raises(ValueError, match="shape"):
        gemm_post_dequant(np.zeros((1, 3), np.int8), qw)
    with pytest.raises(TypeError, match="float16"):
        gemm_post_dequant(x.astype(np.float32), qw)


def _magnitudes(x, qw):
    """Per output element: A = sum_k |x_k| |w_k|, Q = sum_g s sum_g q|x|, B = sum_g s (sum q|x| + z sum|x|)."""
    m = x.shape[0]
    ax = np.abs(x.astype(np.float64))  # [M, K]
    a = ax @ np.abs(qw.dequantize())  # [M, N]
    s = qw.scales.astype(np.float64)  # [G, N]
    qsum = np.einsum("mgi,gin->mgn", ax.reshape(m, qw.num_groups, qw.group_size),
                     qw.q.astype(np.float64).reshape(qw.num_groups, qw.group_size, -1))  # [M, G, N]
    xsum = ax.reshape(m, qw.num_groups, qw.group_size).sum(axis=-1)  # [M, G]
    big_q = (s[None] * qsum).sum(axis=1)  # [M, N]
    big_b = (s[None] * (qsum + qw.zeros.astype(np.float64)[None] * xsum[:, :, None])).sum(axis=1)  # [M, N]
    return a, big_q, big_b


@st.composite
def float_cases(draw):
    bits = draw(st.integers(2, 8))
    g = draw(st.sampled_from([4, 16, 32, 128]))
    groups, m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.standard_normal((groups * g, n)) * draw(st.sampled_from([0.01, 1.0])) + 0.3 * rng.standard_normal(n)
    return rng, quantize_weights(w, bits=bits, group_size=g)


@settings(max_examples=25, deadline=None)
@given(float_cases())
def test_w4a8_float_paths_agree_within_derived_bound(case):
    rng, qw = case
    k = qw.shape[0]
    num_groups = qw.num_groups
    x = rng.integers(-128, 128, size=(3, k)).astype(np.int8)
    exact = x.astype(np.float64) @ qw.dequantize()  # exact weights; float64 error < K 2**-53 A
    a, _, big_b = _magnitudes(x, qw)
    post = gemm_post_dequant(x, qw)  # P and S exact integers; s P, s z S, difference, G-term sum in float32
    first = gemm_dequant_first(x, qw)  # FP16 weights (one rounding each), float32 matmul of K exact products
    assert post.dtype == first.dtype == np.float32
    float64_slack = k * 2.0**-52 * a
    bound_post = (num_groups + 2) * U32 * 1.01 * big_b + float64_slack
    bound_first = U16 * a + k * U32 * 1.01 * (1 + U16) * a + float64_slack
    assert np.all(np.abs(post - exact) <= bound_post)
    assert np.all(np.abs(first - exact) <= bound_first)
    assert np.all(np.abs(post.astype(np.float64) - first) <= bound_post + bound_first)


@settings(max_examples=25, deadline=None)
@given(float_cases())
def test_w4a16_float_paths_agree_within_derived_bound(case):
    rng, qw = case
    k = qw.shape[0]
    g, num_groups, bits = qw.group_size, qw.num_groups, qw.bits
    x = (rng.standard_normal((3, k)) * 4).astype(np.float16)  # |q x| stays far below 65504
    exact = x.astype(np.float64) @ qw.dequantize()
    a, big_q, big_b = _magnitudes(x, qw)
    post = gemm_post_dequant(x, qw)
    first = gemm_dequant_first(x, qw)
    # Post-GEMM: shift-add products err <= (bits-1) U16 q|x| (1+U16)^bits; float32 sums over a group
    # (g terms, P and S) then s P, s z S, their difference and the G-term sum: (g + G + 3) U32 relative
    # to B, with 1.01 covering (1+U16)^bits and the higher-order terms of gamma_n = n u / (1 - n u).
    bound_post = 1.01 * ((bits - 1) * U16 * big_q + (g + num_groups + 3) * U32 * 1.01 * big_b) + k * 2.0**-52 * a
    # Dequant-first: FP16 weights (U16 relative each), K exact FP16 x FP16 products summed in float32.
    bound_first = U16 * a + k * U32 * 1.01 * (1 + U16) * a + k * 2.0**-52 * a
    assert np.all(np.abs(post - exact) <= bound_post)
    assert np.all(np.abs(first - exact) <= bound_first)
    assert np.all(np.abs(post.astype(np.float64) - first) <= bound_post + bound_first)


def test_post_dequant_avoids_fp16_weight_rounding():
    # With integer-valued FP16 activations the W4A16 products and group sums are exact, so the
    # post-GEMM result carries float32 error only; dequant-first rounds every weight to FP16.
    rng = np.random.default_rng(11)
    qw = quantize_weights(rng.standard_normal((256, 16)), bits=4, group_size=128)
    x = rng.integers(-8, 9, size=(4, 256)).astype(np.float16)
    exact = x.astype(np.float64) @ qw.dequantize()
    a, _, big_b = _magnitudes(x, qw)
    post_err = np.abs(gemm_post_dequant(x, qw) - exact)
    first_err = np.abs(gemm_dequant_first(x, qw) - exact)
    assert np.all(post_err <= (qw.num_groups + 2) * U32 * 1.01 * big_b)
    assert first_err.max() > post_err.max()
    # Dequantizing into float32 instead removes the weight rounding from the baseline too.
    first32 = gemm_dequant_first(x, qw, weight_dtype=np.float32)
    assert np.all(np.abs(first32 - exact) <= 256 * U32 * 1.01 * a)
