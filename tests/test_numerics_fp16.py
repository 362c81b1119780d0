"""W4A16 product by FP16 exponent addition."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.numerics import fp16_mul_pow2, fp16_shift_add_gemm, fp16_shift_add_multiply

U16 = 2.0 ** -11  # unit roundoff of float16
U32 = 2.0 ** -24  # unit roundoff of float32
ALL_FP16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)  # every bit pattern


def _same_bits_or_both_nan(got, expected):
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint16), expected[~nan].view(np.uint16))


@pytest.mark.parametrize("b", range(16))
def test_exponent_add_matches_fp16_multiply_for_every_bit_pattern(b):
    got = fp16_mul_pow2(ALL_FP16, b)
    assert got.dtype == np.float16 and got.shape == (65536,)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = ALL_FP16 * np.float16(2**b)
    _same_bits_or_both_nan(got, expected)


@pytest.mark.parametrize("b", [16, 20, 24, 30, 39, 40, 41, 100, 10**6])
def test_large_shifts_match_float64_reference(b):
    got = fp16_mul_pow2(ALL_FP16, b)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = (ALL_FP16.astype(np.float64) * 2.0 ** min(b, 1000)).astype(np.float16)
    _same_bits_or_both_nan(got, expected)


@pytest.mark.parametrize("bits_in,b,bits_out", [
    (0x0001, 3, 0x0008),  # 2**-24 * 8 = 2**-21, still subnormal
    (0x0001, 10, 0x0400),  # 2**-24 * 2**10 = 2**-14, the smallest normal
    (0x03FF, 1, 0x07FE),  # 1023 * 2**-24 * 2 -> exponent field 1, fraction (1023 - 512) << 1
    (0x8200, 2, 0x8800),  # -512 * 2**-24 * 4 = -2**-13
    (0x3C00, 3, 0x4800),  # 1.0 * 8 = 8.0
    (0x7BFF, 1, 0x7C00),  # 65504 * 2 overflows to +inf
    (0xFBFF, 1, 0xFC00),  # -65504 * 2 overflows to -inf
    (0x8000, 5, 0x8000),  # -0 stays -0
    (0xFC00, 2, 0xFC00),  # -inf passes through
    (0x7E01, 2, 0x7E01),  # NaN passes through with its payload
])
def test_hand_computed_patterns(bits_in, b, bits_out):
    x = np.array([bits_in], np.uint16).view(np.float16)
    assert int(fp16_mul_pow2(x, b).view(np.uint16)[0]) == bits_out


def test_shift_broadcasts_and_validates():
    x = np.array([[1.0], [-0.5], [3.0]], np.float16)  # [3, 1]
    got = fp16_mul_pow2(x, np.arange(4))  # [3, 4]
    np.testing.assert_array_equal(got, x.astype(np.float64) * 2.0 ** np.arange(4))
    with pytest.raises(ValueError):
        fp16_mul_pow2(x, -1)
    with pytest.raises(TypeError):
        fp16_mul_pow2(x.astype(np.float32), 1)
    with pytest.raises(TypeError):
        fp16_mul_pow2(x, 1.0)


def test_shift_add_product_for_every_finite_fp16_and_int4_weight():
    x = ALL_FP16[np.isfinite(ALL_FP16)]  # [63488]
    q = np.arange(16)  # [16]
    got = fp16_shift_add_multiply(q[None, :], x[:, None], bits=4)  # [63488, 16]
    exact = q[None, :] * x[:, None].astype(np.float64)  # exact in float64
    with np.errstate(over="ignore"):
        rounded = exact.astype(np.float16)  # correctly rounded float16(q * x)
    popcount = np.array([bin(v).count("1") for v in q])[None, :]
    # One set bit (or none): a single exact term, so bit-identical to float16(q * x), signs of zero included.
    single = np.broadcast_to(popcount <= 1, got.shape)
    assert np.array_equal(got[single].view(np.uint16), rounded[single].view(np.uint16))
    # More bits: each of the popcount - 1 additions rounds with relative error <= U16 of a partial
    # sum no larger than |q x| (1 + U16)^j, while the result is not above the FP16 maximum.
    in_range = np.abs(exact) <= 65504
    bound = (popcount - 1) * U16 * np.abs(exact) * (1 + U16) ** 3  # [63488, 16]
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err[in_range] <= bound[in_range])
    # Beyond the FP16 range, sums overflow to infinity with the right sign.
    big = np.abs(exact) >= 65520  # at or above the overflow threshold 65504 + half an ulp
    assert np.all(np.isinf(got[big])) and np.array_equal(np.signbit(got[big]), np.signbit(exact[big]))
    # Sequential rounding does differ from the correctly rounded product sometimes.
    assert np.count_nonzero(got[in_range] != rounded[in_range]) > 0


def test_sequential_sum_rounds_differently_from_exact_product():
    # x = 1 + 2**-10, q = 11 = 0b1011: terms x, 2x, 8x.
    # x + 2x = 3 + 1.5 * 2**-9 is a tie in [2, 4) -> even fraction -> 3 + 2**-8.
    # (3 + 2**-8) + (8 + 2**-7) = 11 + 1.5 * 2**-7 is a tie in [8, 16) -> even -> 11 + 2**-6 = 11.015625,
    # while 11 * x = 11.0107421875 rounds to 11.0078125.
    x = np.float16(1 + 2**-10)
    assert float(fp16_shift_add_multiply(11, x, bits=4)) == 11.015625
    assert float(np.float16(11 * (1 + 2**-10))) == 11.0078125


def test_zero_weight_and_special_values():
    x = np.array([-2.0, 0.0, -0.0, np.inf, -np.inf, np.nan], np.float16)
    zero = fp16_shift_add_multiply(0, x, bits=4)
    assert np.all(zero == 0) and np.array_equal(np.signbit(zero), np.signbit(x))
    three = fp16_shift_add_multiply(3, x, bits=4)
    np.testing.assert_array_equal(three[:5], [-6.0, 0.0, 0.0, np.inf, -np.inf])
    assert np.isnan(three[5])


def test_gemm_with_integer_valued_activations_is_exact():
    rng = np.random.default_rng(7)
    x = rng.integers(-8, 9, size=(4, 96)).astype(np.float16)  # products |q x| <= 120: exact in FP16
    q = rng.integers(0, 16, size=(96, 5))
    expected = x.astype(np.int64) @ q  # |y| <= 96 * 120 < 2**24: exact in float32
    np.testing.assert_array_equal(fp16_shift_add_gemm(x, q, 4), expected)
    small = fp16_shift_add_gemm(x[:, :16], q[:16], 4, accumulate_dtype=np.float16)  # |y| <= 1920 < 2**11
    assert small.dtype == np.float16
    np.testing.assert_array_equal(small, x[:, :16].astype(np.int64) @ q[:16])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 4), st.integers(1, 80), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_gemm_error_bound(bits, m, k, n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * 10).astype(np.float16)
    q = rng.integers(0, 2**bits, size=(k, n))
    got = fp16_shift_add_gemm(x, q, bits, chunk_elements=int(rng.integers(1, 5000)))
    exact = x.astype(np.float64) @ q  # float64: < K * 2**-53 relative, negligible against the bound
    mag = np.abs(x.astype(np.float64)) @ q  # sum_k |x_k| q_k
    # Products: <= (bits - 1) U16 |q x| (1 + U16)^bits each; sequential float32 sum of K terms:
    # <= K U32 (1 + U32)^K sum |p_k|, with |p_k| <= |q x| (1 + U16)^bits.
    growth = (1 + U16) ** bits
    bound = ((bits - 1) * U16 * growth + k * U32 * (1 + U32) ** k * growth) * mag + k * 2.0**-52 * mag
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= bound)
