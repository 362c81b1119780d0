"""W4A8 shift-and-add product and GEMM: exact integer results."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.numerics import shift_add_gemm, shift_add_multiply


def test_hand_computed_product():
    # 13 = 0b1101 -> (-7 << 0) + (-7 << 2) + (-7 << 3) = -7 - 28 - 56 = -91.
    assert int(shift_add_multiply(np.uint8(13), np.int8(-7))) == -91
    assert int(shift_add_multiply(np.uint8(0), np.int8(-128))) == 0
    assert int(shift_add_multiply(np.uint8(15), np.int8(-128))) == -1920


def test_all_int4_by_int8_pairs():
    q = np.arange(16, dtype=np.uint8)[:, None]  # [16, 1]
    x = np.arange(-128, 128, dtype=np.int64).astype(np.int8)[None, :]  # [1, 256]
    got = shift_add_multiply(q, x, bits=4)  # [16, 256]
    assert got.dtype == np.int32 and got.shape == (16, 256)
    expected = np.array([[a * b for b in range(-128, 128)] for a in range(16)])  # Python ints
    np.testing.assert_array_equal(got, expected)


def test_int8_weights_by_int16_activations():
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, size=1000).astype(np.uint8)
    x = rng.integers(-32768, 32768, size=1000).astype(np.int16)
    got = shift_add_multiply(q, x, bits=8)
    np.testing.assert_array_equal(got, q.astype(np.int64) * x.astype(np.int64))


@st.composite
def gemm_cases(draw):
    bits = draw(st.integers(1, 8))
    m, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 70)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, size=(m, k)).astype(np.int8)
    x[rng.random(x.shape) < 0.1] = -128  # the asymmetric extreme
    q = rng.integers(0, 2**bits, size=(k, n)).astype(np.uint8)
    return x, q, bits


@settings(max_examples=40, deadline=None)
@given(gemm_cases(), st.sampled_from([np.int32, np.int64]))
def test_gemm_equals_integer_matmul(case, acc):
    x, q, bits = case
    got = shift_add_gemm(x, q, bits, accumulate_dtype=acc)
    assert got.dtype == acc and got.shape == (x.shape[0], q.shape[1])
    expected = x.astype(object) @ q.astype(object)  # Python-int matmul, independent of NumPy integer types
    np.testing.assert_array_equal(got, expected.astype(np.int64))


def test_accumulator_overflow_is_detected():
    # Worst case K * 128 * 15: K = 17 -> 32640 fits int16, K = 18 -> 34560 does not.
    q17 = np.full((17, 1), 15, np.uint8)
    x17 = np.full((1, 17), -128, np.int8)
    assert int(shift_add_gemm(x17, q17, 4, accumulate_dtype=np.int16)[0, 0]) == -32640
    with pytest.raises(ValueError, match="overflow"):
        shift_add_gemm(np.full((1, 18), -128, np.int8), np.full((18, 1), 15, np.uint8), 4,
                       accumulate_dtype=np.int16)


def test_input_validation():
    with pytest.raises(ValueError, match="codes"):
        shift_add_multiply(np.uint8(16), np.int8(1), bits=4)
    with pytest.raises(TypeError):
        shift_add_multiply(np.uint8(1), np.float32(1.0), bits=4)
    with pytest.raises(ValueError, match="shapes"):
        shift_add_gemm(np.zeros((2, 3), np.int8), np.zeros((4, 2), np.uint8))
