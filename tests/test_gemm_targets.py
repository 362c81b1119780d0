"""Decode and prefill GEMMs on mixpe-w4a8 run close to their roofline."""

from __future__ import annotations

import pytest

from mixpe_sys import load_design, simulate_gemm


@pytest.fixture(scope="module")
def design():
    return load_design("mixpe-w4a8")


def test_decode_gemv_is_memory_bound_near_roofline(design):
    r = simulate_gemm(1, 4096, 4096, design)
    # INT4 weights 4096 x 4096 / 2 = 8 MiB, + 32 groups x 4096 cols x (16 + 4) bits = 320 KiB of scales/zeros,
    # + 4 KiB of INT8 activations in, 4 KiB out; over HBM2E's 409.6 GB/s
    weight_bytes = 4096 * 4096 // 2 + 32 * 4096 * 20 // 8
    compulsory = weight_bytes + 4096 + 4096
    memory_time_s = compulsory / 409.6e9
    # 16.8 M MACs over 8 tiles x 64 x 64 PEs x 1 MAC/cycle x 1 GHz
    compute_time_s = 4096 * 4096 / (8 * 64 * 64 * 1e9)
    assert r.memory_time_s == pytest.approx(memory_time_s, rel=1e-12)
    assert r.compute_time_s == pytest.approx(compute_time_s, rel=1e-12)
    assert r.roofline_bound == "memory"
    assert r.roofline_time_s == r.memory_time_s
    assert r.roofline_time_s <= r.time_s <= 1.15 * r.roofline_time_s


def test_prefill_gemm_is_compute_bound_near_roofline(design):
    r = simulate_gemm(2048, 4096, 4096, design)
    # 2048 x 4096 x 4096 MACs = 34.4 G over 32.768 TMAC/s = 1.048576 ms
    compute_time_s = 2048 * 4096 * 4096 / (8 * 64 * 64 * 1e9)
    assert compute_time_s == 1.048576e-3
    assert r.compute_time_s == pytest.approx(compute_time_s, rel=1e-12)
    assert r.memory_time_s < r.compute_time_s / 10
    assert r.roofline_bound == "compute"
    assert r.roofline_time_s <= r.time_s <= 1.15 * r.roofline_time_s
