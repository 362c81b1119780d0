"""Group-wise asymmetric weight quantization and symmetric activation quantization."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.numerics import QuantizedActivations, QuantizedWeights, quantize_activations, quantize_weights


def test_hand_computed_two_columns():
    # Column 0: range [0, 3.3], s = fp16(3.3 / 3) = fp16(1.1) = 1126/1024, z = 0,
    #   w / s = [0, 0.909, 1.819, 3.001] -> q = [0, 1, 2, 3].
    # Column 1: range [-1, 0.5], s = 1.5 / 3 = 0.5 (exact), z = rint(1 / 0.5) = 2,
    #   w / s = [-2, -1, 0.5, 1] -> rint (half to even: 0.5 -> 0) -> q = [0, 1, 2, 3].
    w = np.array([[0.0, -1.0], [1.0, -0.5], [2.0, 0.25], [3.3, 0.5]])
    qw = quantize_weights(w, bits=2, group_size=4)
    assert qw.q.dtype == np.uint8 and qw.scales.dtype == np.float16
    np.testing.assert_array_equal(qw.q, [[0, 0], [1, 1], [2, 2], [3, 3]])
    np.testing.assert_array_equal(qw.scales.astype(np.float64), [[1126 / 1024, 0.5]])
    np.testing.assert_array_equal(qw.zeros, [[0, 2]])
    expected = np.array([[0.0, -1.0], [1.099609375, -0.5], [2.19921875, 0.0], [3.298828125, 0.5]])
    np.testing.assert_array_equal(qw.dequantize(), expected)


def test_groups_are_independent_along_k():
    # Two groups of 2 rows: group 0 spans [-3, 0] -> s = 1, z = 3; group 1 spans [0, 12] -> s = 4, z = 0.
    w = np.array([[-3.0], [-1.0], [4.0], [12.0]])
    qw = quantize_weights(w, bits=2, group_size=2)
    np.testing.assert_array_equal(qw.scales, [[1.0], [4.0]])
    np.testing.assert_array_equal(qw.zeros, [[3], [0]])
    np.testing.assert_array_equal(qw.q, [[0], [2], [1], [3]])
    np.testing.assert_array_equal(qw.dequantize(), w)


def test_group_size_zero_is_per_output_channel():
    w = np.arange(12, dtype=np.float64).reshape(4, 3)
    qw = quantize_weights(w, bits=4, group_size=0)
    assert qw.group_size == 4 and qw.num_groups == 1 and qw.scales.shape == (1, 3)


@pytest.mark.parametrize("k,g", [(100, 128), (130, 128), (12, 5)])
def test_k_not_a_multiple_of_group_size_is_value_error(k, g):
    with pytest.raises(ValueError, match="not a multiple"):
        quantize_weights(np.ones((k, 2)), bits=4, group_size=g)


@pytest.mark.parametrize("bad", [np.ones(8), np.ones((2, 2, 2)), np.full((4, 1), np.nan), np.full((4, 1), np.inf)])
def test_bad_weights_are_value_errors(bad):
    with pytest.raises(ValueError):
        quantize_weights(bad, bits=4, group_size=2 if bad.ndim == 2 else 1)


@pytest.mark.parametrize("bits", [0, 17, 2.5, True])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        quantize_weights(np.ones((4, 1)), bits=bits, group_size=4)


def test_range_too_large_for_fp16_scale():
    with pytest.raises(ValueError, match="FP16"):
        quantize_weights(np.array([[0.0], [1e7]]), bits=4, group_size=2)


def test_all_zero_group_gets_unit_scale():
    w = np.zeros((4, 2))
    qw = quantize_weights(w, bits=4, group_size=4)
    np.testing.assert_array_equal(qw.scales, 1.0)
    np.testing.assert_array_equal(qw.zeros, 0)
    np.testing.assert_array_equal(qw.dequantize(), 0.0)


def test_quantized_weights_are_immutable():
    qw = quantize_weights(np.ones((4, 2)), bits=4, group_size=2)
    with pytest.raises(ValueError):
        qw.q[0, 0] = 1
    with pytest.raises(AttributeError):
        qw.bits = 8


def test_constructor_validates():
    q = np.zeros((4, 2), np.uint8)
    ones = np.ones((2, 2), np.float16)
    z = np.zeros((2, 2), np.uint8)
    QuantizedWeights(q, ones, z, 4, 2)
    with pytest.raises(ValueError, match="float16"):
        QuantizedWeights(q, np.full((2, 2), 0.1), z, 4, 2)
    with pytest.raises(ValueError, match="shape"):
        QuantizedWeights(q, np.ones((1, 2), np.float16), z, 4, 2)
    with pytest.raises(ValueError, match="zeros"):
        QuantizedWeights(q, ones, np.full((2, 2), 16), 4, 2)
    with pytest.raises(ValueError, match="codes"):
        QuantizedWeights(np.full((4, 2), 16), ones, z, 4, 2)
    with pytest.raises(ValueError, match="positive"):
        QuantizedWeights(q, -ones, z, 4, 2)
    with pytest.raises(ValueError, match="group_size"):
        QuantizedWeights(q, ones, z, 4, 3)


@st.composite
def weight_cases(draw):
    bits = draw(st.integers(1, 8))
    g = draw(st.sampled_from([1, 2, 4, 8, 32, 128]))
    groups = draw(st.integers(1, 3))
    n = draw(st.integers(1, 5))
    magnitude = draw(st.sampled_from([1e-3, 1.0, 50.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((groups * g, n)) * magnitude + draw(st.sampled_from([0.0, 2.0 * magnitude]))
    w[rng.random(w.shape) < 0.1] = 0.0
    return w, bits, g


@settings(max_examples=40, deadline=None)
@given(weight_cases())
def test_quantization_error_bound(case):
    w, bits, g = case
    qw = quantize_weights(w, bits=bits, group_size=g)
    k, n = w.shape
    qmax = 2**bits - 1
    assert qw.q.shape == (k, n) and qw.scales.shape == qw.zeros.shape == (k // g, n)
    assert qw.q.max() <= qmax and qw.zeros.max() <= qmax
    wg = w.reshape(k // g, g, n)  # [G, g, N]
    span = np.maximum(wg.max(axis=1), 0) - np.minimum(wg.min(axis=1), 0)  # [G, N]
    s = qw.scales.astype(np.float64)
    expected_scales = np.where(span > 0, (span / qmax).astype(np.float16), np.float16(1.0))  # all-zero group: 1
    np.testing.assert_array_equal(qw.scales, expected_scales)
    # Unclipped codes give |w - w_hat| = s * |w/s - rint(w/s)| <= s/2; only the top code can
    # clip, by at most span - qmax * s (the FP16 scale rounded below span / qmax).
    bound = s / 2 + np.maximum(0.0, span - qmax * s)  # [G, N]
    err = np.abs(w - qw.dequantize()).reshape(k // g, g, n)  # [G, g, N]
    assert np.all(err <= bound[:, None, :] * (1 + 1e-12))
    # Zero is always exactly representable.
    assert np.all(qw.dequantize()[w == 0] == 0)
    # One rounding from the exact float64 dequantized value.
    np.testing.assert_array_equal(qw.dequantize(np.float16), qw.dequantize().astype(np.float16))


def test_wide_codes_use_uint16():
    qw = quantize_weights(np.linspace(-1, 1, 8).reshape(8, 1), bits=12, group_size=8)
    assert qw.q.dtype == np.uint16 and qw.q.max() == 4095 and qw.q.min() == 0


def test_activation_quantization_hand_computed():
    # bits = 3 -> qmax = 3. Row 0: max|x| = 3 -> s = 1; -1.5 -> -2 and 0.75 -> 1 (ties to even).
    # Row 1: max|x| = 6 -> s = 2; 1/2 = 0.5 -> 0, -2.9/2 = -1.45 -> -1.
    x = np.array([[3.0, -1.5, 0.75, 0.0], [6.0, 1.0, -2.9, 0.0]])
    qa = quantize_activations(x, bits=3, per_token=True)
    np.testing.assert_array_equal(qa.scales, [[1.0], [2.0]])
    np.testing.assert_array_equal(qa.q, [[3, -2, 1, 0], [3, 0, -1, 0]])
    np.testing.assert_array_equal(qa.dequantize(), [[3, -2, 1, 0], [6, 0, -2, 0]])
    # Per tensor: s = 6 / 3 = 2 for both rows; 1.5 -> 2, -0.75 -> -1, 0.375 -> 0.
    qt = quantize_activations(x, bits=3, per_token=False)
    assert qt.scales.shape == (1, 1) and qt.scales[0, 0] == 2.0
    np.testing.assert_array_equal(qt.q, [[2, -1, 0, 0], [3, 0, -1, 0]])


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 16), st.booleans(), st.integers(0, 2**32 - 1))
def test_activation_quantization_error_bound(bits, per_token, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 17)) * rng.choice([1e-3, 1.0, 1e3], size=(3, 1))
    qa = quantize_activations(x, bits=bits, per_token=per_token)
    qmax = 2 ** (bits - 1) - 1
    assert qa.q.dtype == (np.int8 if bits <= 8 else np.int16)
    assert np.abs(qa.q.astype(np.int64)).max() <= qmax
    # max|x| maps to qmax, so nothing clips: error <= s/2 (up to float32 rounding of s).
    assert np.all(np.abs(x - qa.dequantize()) <= qa.scales.astype(np.float64) / 2 * (1 + 1e-6))


def test_activation_quantization_zero_row_and_validation():
    qa = quantize_activations(np.zeros((2, 3)), bits=8)
    np.testing.assert_array_equal(qa.scales, 1.0)
    with pytest.raises(ValueError):
        quantize_activations(np.zeros((2, 3)), bits=1)
    with pytest.raises(ValueError):
        QuantizedActivations(np.full((1, 2), 128), np.ones((1, 1)), 8)
