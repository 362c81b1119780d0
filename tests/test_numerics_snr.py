"""Quantization SNR and small-float rounding."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from mixpe_sys.numerics import (E4M3_MAX, SnrTarget, fake_quantize_activations, max_finite, quantization_snr_db,
                                quantize_weights, round_to_minifloat, snr_db)
from mixpe_sys.workload.quant import NumberFormat, QuantScheme


def scheme(w=4, a=8, fmt="int", g=128):
    return SimpleNamespace(weight_bits=w, activation_bits=a, activation_format=fmt, group_size=g)


@pytest.fixture(scope="module")
def weights():
    return np.random.default_rng(42).standard_normal((512, 128)) * 0.02  # [K, N]


def test_snr_db_definition():
    assert snr_db([3.0, 4.0], [3.0, 4.0]) == math.inf
    # signal 25, noise 0.25 -> 10 log10(100) = 20 dB.
    assert snr_db([3.0, 4.0], [3.5, 4.0]) == pytest.approx(20.0, abs=1e-12)
    with pytest.raises(ValueError):
        snr_db([0.0], [1.0])
    with pytest.raises(ValueError):
        snr_db([1.0, 2.0], [1.0])


def test_hand_computed_weight_snr():
    # bits 2, one group: s = fp16(3.3 / 3) = 1126/1024, z = 0, w_hat = [0, s, 2s, 3s]
    # = [0, 1.099609375, 2.19921875, 3.298828125].
    w = np.array([[0.0], [1.0], [2.0], [3.3]])
    w_hat = np.array([0.0, 1.099609375, 2.19921875, 3.298828125])
    signal = 0 + 1 + 4 + 3.3**2
    noise = float(np.sum((w[:, 0] - w_hat) ** 2))
    got = quantization_snr_db(w, scheme(w=2, g=4), target="weights")
    assert got == pytest.approx(10 * math.log10(signal / noise), rel=1e-12)


def test_each_weight_bit_is_worth_about_six_db(weights):
    # A uniform quantizer's error power is step**2 / 12 with step = range / (2**b - 1) for the same
    # ranges, so W8 vs W4 gains 20 log10(255 / 15) = 24.61 dB on the weights.
    w4 = quantization_snr_db(weights, scheme(w=4), target=SnrTarget.WEIGHTS)
    w8 = quantization_snr_db(weights, scheme(w=8), target=SnrTarget.WEIGHTS)
    assert w8 - w4 == pytest.approx(20 * math.log10(255 / 15), abs=1.0)
    assert quantization_snr_db(weights, scheme(w=8, a=16, fmt="fp")) > quantization_snr_db(
        weights, scheme(w=4, a=16, fmt="fp"))


def test_smaller_groups_are_more_accurate(weights):
    snrs = [quantization_snr_db(weights, scheme(w=4, a=16, fmt="fp", g=g)) for g in (32, 64, 128, 256, 0)]
    assert all(a > b for a, b in zip(snrs, snrs[1:]))


def test_wider_activations_are_more_accurate(weights):
    int8 = quantization_snr_db(weights, scheme(w=8, a=8, fmt="int"))
    fp16 = quantization_snr_db(weights, scheme(w=8, a=16, fmt="fp"))
    int4 = quantization_snr_db(weights, scheme(w=8, a=4, fmt="int"))
    fp8 = quantization_snr_db(weights, scheme(w=8, a=8, fmt="fp"))
    assert fp16 > int8 > fp8 > int4


def test_lossless_formats_give_infinite_snr():
    w = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
    x = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)
    assert quantization_snr_db(w, scheme(w=32, a=32, fmt="fp", g=0), activations=x) == math.inf
    # Weights on the quantization grid lose nothing.
    grid = quantize_weights(w, bits=4, group_size=4).dequantize()
    assert quantization_snr_db(grid, scheme(w=4, g=4), target="weights") == math.inf


def test_output_snr_matches_direct_computation():
    rng = np.random.default_rng(9)
    w = rng.standard_normal((64, 8))
    x = rng.standard_normal((5, 64)).astype(np.float32)  # FP32 activations are kept exactly
    w_hat = quantize_weights(w, bits=3, group_size=16).dequantize()
    y = x.astype(np.float64) @ w
    expected = 10 * math.log10(np.sum(y**2) / np.sum((y - x.astype(np.float64) @ w_hat) ** 2))
    got = quantization_snr_db(w, scheme(w=3, a=32, fmt="fp", g=16), activations=x)
    assert got == pytest.approx(expected, rel=1e-12)


def test_deterministic_and_seeded(weights):
    s = scheme()
    assert quantization_snr_db(weights, s, seed=3) == quantization_snr_db(weights, s, seed=3)
    assert quantization_snr_db(weights, s, seed=3) != quantization_snr_db(weights, s, seed=4)
    x = np.random.default_rng(3).standard_normal((64, weights.shape[0]))
    assert quantization_snr_db(weights, s, activations=x) == quantization_snr_db(weights, s, seed=3)


def test_accepts_quant_scheme_and_enum_formats(weights):
    a16 = QuantScheme.parse("W4A16")
    assert a16.activation_format is NumberFormat.FP
    assert quantization_snr_db(weights, a16) == quantization_snr_db(weights, scheme(w=4, a=16, fmt="fp"))
    assert quantization_snr_db(weights, QuantScheme.parse("W4A8")) == quantization_snr_db(weights, scheme())
    assert quantization_snr_db(weights, scheme(fmt="INT")) == quantization_snr_db(weights, scheme())


def test_invalid_schemes(weights):
    with pytest.raises(ValueError, match="activation_format"):
        quantization_snr_db(weights, scheme(fmt="bf"))
    with pytest.raises(ValueError, match="not a multiple"):
        quantization_snr_db(weights, scheme(g=96))
    with pytest.raises(ValueError, match="weight_bits"):
        quantization_snr_db(weights, scheme(w=24))
    with pytest.raises(ValueError, match="FP activations"):
        quantization_snr_db(weights, scheme(a=12, fmt="fp"))
    with pytest.raises(ValueError, match="activations must be"):
        quantization_snr_db(weights, scheme(), activations=np.ones((2, 3)))


def test_minifloat_fp16_matches_numpy_including_ties_and_overflow():
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    grid = np.unique(h[np.isfinite(h)].astype(np.float64))
    midpoints = (grid[1:] + grid[:-1]) / 2  # every tie
    rng = np.random.default_rng(0)
    spread = rng.standard_normal(20000) * np.exp2(rng.uniform(-30, 17, 20000))
    x = np.concatenate([grid, midpoints, spread, [65519.99, 65520.0, -1e6, np.inf, np.nan]])
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16).astype(np.float64)
    got = round_to_minifloat(x, 5, 10)
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert max_finite(5, 10) == 65504.0


def test_minifloat_e4m3_hand_values():
    # E4M3: bias 7, smallest subnormal 2**-9, largest finite 448 (saturating).
    x = [448.0, 464.0, 1e5, -1e5, 2.0**-9, 2.0**-10, 3 * 2.0**-10, 1.0625, 1.1875, 0.0]
    expected = [448.0, 448.0, 448.0, -448.0, 2.0**-9, 0.0, 2.0**-8, 1.0, 1.25, 0.0]
    # 2**-10 is halfway between 0 and 2**-9 -> even (0); 1.0625 halfway between 1 and 1.125 -> 1;
    # 1.1875 halfway between 1.125 and 1.25 -> 1.25 (even fraction).
    got = round_to_minifloat(x, 4, 3, max_value=E4M3_MAX, saturate=True)
    np.testing.assert_array_equal(got, expected)


def test_fp8_activations_have_three_mantissa_bits():
    x = np.random.default_rng(5).standard_normal((4, 256))
    x_hat = fake_quantize_activations(x, 8, "fp")
    scale = (np.abs(x).max(axis=1, keepdims=True) / 448).astype(np.float32).astype(np.float64)
    normal = np.abs(x / scale) >= 2.0**-6  # E4M3 normal range: half-ulp relative error <= 2**-4
    err = np.abs(x - x_hat)
    assert np.all(err[normal] <= 2.0**-4 * np.abs(x[normal]) * (1 + 1e-12))
    assert np.all(err[~normal] <= 2.0**-10 * np.broadcast_to(scale, x.shape)[~normal])
