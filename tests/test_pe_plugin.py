"""User-defined PE types: registration, their own throughput rule, energy and area, and errors."""

from __future__ import annotations

from fractions import Fraction
from math import ceil

import pytest

from mixpe_sys import ConfigError
from mixpe_sys.area import pe_area_um2
from mixpe_sys.cli import main
from mixpe_sys.designs import design_from_data, design_summary
from mixpe_sys.dse.evaluate import design_columns
from mixpe_sys.energy import constants, pe_mac_energy_pj
from mixpe_sys.hw.config import (AcceleratorConfig, DequantConfig, DequantPlacement, DramConfig, PeArrayConfig,
                                 PeConfig, PeKind, SramConfig, TileConfig)
from mixpe_sys.hw.pe import PeModel, pe_model, registered_pe_kinds, unregister_pe_kind
from mixpe_sys.mapping.gemm import GemmSpec
from mixpe_sys.sim.gemm import simulate_gemm
from mixpe_sys.workload.quant import NumberFormat

KIND = "test_plugin_triple"


def define_triple(kind: str = KIND) -> type[PeModel]:
    """A W4A8 PE doing 3 MACs per cycle along K; wider operands take ``ceil(bits / native)`` passes each."""

    class Triple(PeModel, kind=kind):
        mixed_precision = True
        mult_pj_per_cycle_45nm = 0.4
        acc_pj_per_mac_45nm = 0.05
        area_components_45nm = {"add12": 9, "add32": 1, "dff": 68, "extra_um2": 10.0}

        def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
            cfg = self.config
            passes = ceil(weight_bits / cfg.native_weight_bits) * ceil(activation_bits / cfg.native_activation_bits)
            return Fraction(3, passes * cfg.initiation_interval_cycles)

    return Triple


@pytest.fixture
def triple():
    cls = define_triple()
    yield cls
    unregister_pe_kind(KIND)


def hand_design(pe: PeConfig) -> AcceleratorConfig:
    """One 32x32 output-stationary tile, 500 MHz, SRAM 4 KiB/cycle without latency, one DRAM channel, no NoC."""
    sram = SramConfig(capacity_bytes=1 << 20, banks=64, bank_width_bytes=64, double_buffered=True, latency_cycles=0)
    return AcceleratorConfig(
        name="hand", frequency_hz=500e6, num_tiles=1,
        tile=TileConfig(pe_array=PeArrayConfig(pe=pe, rows=32, cols=32), weight_buffer=sram,
                        activation_buffer=sram, output_buffer=sram,
                        dequant=DequantConfig(placement=DequantPlacement.NONE)),
        dram=DramConfig(channels=1, bandwidth_bytes_per_s=2e9, latency_ns=100.0),
        global_buffer=None, noc=None)


def test_user_pe_registers_and_builds(triple):
    assert KIND in registered_pe_kinds()
    pe = PeConfig(kind=KIND)
    assert type(pe_model(pe)) is triple and triple.kind == KIND
    assert pe_model(pe).macs_per_cycle(4, 8) == 3
    assert pe_model(pe).macs_per_cycle(8, 16) == Fraction(3, 4)
    assert pe_model(PeConfig(kind=KIND, initiation_interval_cycles=2)).macs_per_cycle(4, 8) == Fraction(3, 2)
    assert pe.to_dict()["kind"] == KIND and PeConfig.from_dict(pe.to_dict()) == pe


@pytest.mark.parametrize("weight_bits, k_steps_per_cycle", [(4, 3), (8, Fraction(3, 2))])
def test_gemm_cycles_follow_the_user_rule(triple, weight_bits, k_steps_per_cycle):
    design = hand_design(PeConfig(kind=KIND, pipeline_depth_cycles=2))
    spec = GemmSpec(m=32, n=32, k=96, weight_bits=weight_bits, activation_bits=8, output_bits=8, group_size=0)
    result = simulate_gemm(spec, design)
    assert len(result.steps) == 1
    # one 32x32 output block on a 32x32 array is one fold: 32 + 32 + ceil(96 / rate) - 2, + 1 for depth 2
    compute = ceil(96 / k_steps_per_cycle) + 63
    assert compute == {4: 95, 8: 127}[weight_bits]
    assert result.compute_cycles == compute
    a_bytes, w_bytes, out_bytes = 32 * 96, 96 * 32 * weight_bits // 8, 32 * 32
    load_ns = 100 + (a_bytes + w_bytes) * 0.5  # 2 GB/s: 0.5 ns per byte
    store_ns = 100 + out_bytes * 0.5
    assert result.time_s * 1e9 == pytest.approx(load_ns + compute * 2.0 + store_ns, abs=1e-6)
    assert result.macs == 32 * 32 * 96 and result.energy_j > 0


def test_energy_and_area_come_from_the_class(triple):
    c = constants()
    pe = PeConfig(kind=KIND)
    # (mult / macs_per_cycle + acc) x 28/45 nm energy scaling x register/clock overhead
    expected_pj = (0.4 / 3 + 0.05) * c["scaling"]["energy_factor"] * c["pe_overhead_factor"]
    assert pe_mac_energy_pj(pe, 4, 8) == pytest.approx(expected_pj, rel=1e-12)
    parts = c["components_45nm"]
    um2_45 = 9 * parts["add12"]["area_um2"] + parts["add32"]["area_um2"] + 68 * parts["dff"]["area_um2"] + 10.0
    assert pe_area_um2(pe) == pytest.approx(um2_45 * c["scaling"]["area_factor"], rel=1e-12)


def test_user_pe_in_a_design_dict(triple):
    design = design_from_data({"extends": "mixpe-w4a8", "name": "triple",
                               "tile": {"pe_array": {"pe": {"kind": KIND}}}})
    assert design.tile.pe_array.pe.kind == KIND
    row = design_columns(design, design.native_quant)
    assert row["pe_kind"] == KIND and row["family"] == "MixPE"
    base_design = design_from_data({"extends": "mixpe-w4a8", "name": "base"})
    base = design_columns(base_design, base_design.native_quant)
    assert row["peak_tmac_per_s"] == pytest.approx(3 * base["peak_tmac_per_s"])
    summary = design_summary(design)
    assert summary["pe"] == KIND and summary["area_mm2"] > 0


def test_builtin_kinds_are_plain_strings():
    from mixpe_sys import load_design

    kind = load_design("int8").tile.pe_array.pe.kind
    assert type(kind) is str and kind == PeKind.INT8_MAC == "int8_mac"
    assert pe_model(PeConfig(kind="int8_mac")).macs_per_cycle(8, 8) == 1


def test_unknown_kind_lists_registered_kinds(triple):
    with pytest.raises(ConfigError) as err:
        PeConfig(kind="no_such_pe")
    msg = str(err.value)
    assert msg.startswith("field 'kind': unknown PE kind 'no_such_pe'") and "\n" not in msg
    assert "int8_mac" in msg and KIND in msg


def test_unknown_kind_in_a_yaml_design_is_a_one_line_cli_error(tmp_path, capsys):
    path = tmp_path / "bad_pe.yaml"
    path.write_text("extends: mixpe-w4a8\nname: bad\ntile:\n  pe_array:\n    pe:\n      kind: no_such_pe\n")
    try:
        code = main(["gemm", "--design", str(path), "--m", "1", "--n", "64", "--k", "64"])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}:6: field 'tile.pe_array.pe.kind': unknown PE kind 'no_such_pe'" in err
    assert "mixpe_w4a8" in err


def test_duplicate_registration_is_an_error(triple):
    with pytest.raises(ValueError, match=f"'{KIND}' is already registered by .*Triple"):
        class Other(PeModel, kind=KIND):
            def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
                return Fraction(1)
    assert pe_model(PeConfig(kind=KIND)).macs_per_cycle(4, 8) == 3  # the first class stays registered
    with pytest.raises(ValueError, match="'int8_mac' is already registered"):
        define_triple(PeKind.INT8_MAC)


def test_running_the_same_definition_again_replaces_it(triple):
    again = define_triple()  # same module and qualified name: a re-import or a re-run notebook cell
    assert again is not triple
    assert type(pe_model(PeConfig(kind=KIND))) is again


def test_incomplete_pe_types_are_rejected_at_definition():
    with pytest.raises(TypeError, match="must override macs_per_cycle"):
        class NoRule(PeModel, kind="test_plugin_norule"):
            pass
    with pytest.raises(TypeError, match="sets mult_pj_per_cycle_45nm but not acc_pj_per_mac_45nm"):
        class HalfFigures(PeModel, kind="test_plugin_half"):
            mult_pj_per_cycle_45nm = 0.1

            def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
                return Fraction(1)
    with pytest.raises(ValueError, match="use letters, digits"):
        define_triple("bad kind")
    assert not {"test_plugin_norule", "test_plugin_half", "bad kind"} & set(registered_pe_kinds())


def test_pe_without_figures_fails_only_when_costed():
    class Bare(PeModel, kind="test_plugin_bare"):
        def macs_per_cycle(self, weight_bits, activation_bits, activation_format=NumberFormat.INT):
            return Fraction(1)

    try:
        pe = PeConfig(kind="test_plugin_bare")
        assert pe_model(pe).macs_per_cycle(4, 8) == 1
        with pytest.raises(ConfigError, match="has no energy/area figures: set mult_pj_per_cycle_45nm"):
            pe_mac_energy_pj(pe, 4, 8)
        with pytest.raises(ConfigError, match="has no energy/area figures"):
            pe_area_um2(pe)
    finally:
        unregister_pe_kind("test_plugin_bare")
    assert "test_plugin_bare" not in registered_pe_kinds()
    with pytest.raises(ValueError, match="built in"):
        unregister_pe_kind(PeKind.MIXPE_W4A8)
