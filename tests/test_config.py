"""Config loading: unknown fields, bounds, YAML line numbers, extends, DRAM presets, round trips."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from mixpe_sys import ConfigError, design_names, load_design
from mixpe_sys.config_base import load_config_file, parse_yaml_with_lines
from mixpe_sys.hw.config import (AcceleratorConfig, Dataflow, DramConfig, NocConfig, PeKind, SramConfig,
                                 Topology)

DRAM = {"channels": 2, "bandwidth_bytes_per_s": 1.0e9, "latency_ns": 10.0}


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# ---------------------------------------------------------------- from_dict


def test_from_dict_builds_nested_config():
    cfg = DramConfig.from_dict({**DRAM, "row_buffer": {"banks_per_channel": 4}})
    assert cfg.channels == 2
    assert cfg.row_buffer.banks_per_channel == 4
    assert cfg.row_buffer.row_bytes == 2048  # the field's default
    # 1e9 B/s shared by 2 channels at full efficiency
    assert cfg.channel_bandwidth_bytes_per_s == 0.5e9


def test_from_dict_rejects_unknown_top_level_field():
    with pytest.raises(ConfigError) as info:
        DramConfig.from_dict({**DRAM, "chanels": 4})
    msg = str(info.value)
    assert "field 'chanels'" in msg
    assert "unknown field" in msg
    assert "channels" in msg  # the known fields are listed


def test_from_dict_rejects_unknown_nested_field_with_dotted_path():
    data = load_design("mixpe-w4a8").to_dict()
    data["tile"]["weight_buffer"]["capacity_kb"] = 64
    with pytest.raises(ConfigError, match=r"field 'tile\.weight_buffer\.capacity_kb': unknown field"):
        AcceleratorConfig.from_dict(data)


def test_from_dict_missing_required_field():
    with pytest.raises(ConfigError, match=r"field 'latency_ns': missing required field"):
        DramConfig.from_dict({"channels": 1, "bandwidth_bytes_per_s": 1e9})


@pytest.mark.parametrize("field, value, expected", [
    ("channels", 0, "field 'channels': must be >= 1, got 0"),
    ("bandwidth_bytes_per_s", 0.0, "field 'bandwidth_bytes_per_s': must be > 0 bytes/s, got 0.0"),
    ("latency_ns", -5.0, "field 'latency_ns': must be >= 0 ns, got -5.0"),
    ("bandwidth_efficiency", 1.5, "field 'bandwidth_efficiency': must be <= 1, got 1.5"),
])
def test_bounds_error_names_field_and_value(field, value, expected):
    with pytest.raises(ConfigError) as info:
        DramConfig.from_dict({**DRAM, field: value})
    assert expected in str(info.value)


def test_bounds_error_on_direct_construction():
    with pytest.raises(ConfigError, match=r"field 'capacity_bytes': must be >= 1 bytes, got -1"):
        SramConfig(capacity_bytes=-1)


def test_nested_bounds_error_has_dotted_path():
    data = load_design("paper-int8").to_dict()
    data["dram"]["channels"] = 0
    with pytest.raises(ConfigError, match=r"field 'dram\.channels': must be >= 1, got 0"):
        AcceleratorConfig.from_dict(data)


@pytest.mark.parametrize("field, value, fragment", [
    ("channels", 2.5, "expected an integer, got 2.5"),
    ("channels", "two", "expected an integer, got 'two'"),
    ("latency_ns", True, "expected a number, got True"),
    ("latency_ns", float("nan"), "expected a finite number"),
])
def test_type_errors_name_field_and_value(field, value, fragment):
    with pytest.raises(ConfigError) as info:
        DramConfig.from_dict({**DRAM, field: value})
    assert f"field '{field}'" in str(info.value)
    assert fragment in str(info.value)


def test_enum_field_lists_choices():
    with pytest.raises(ConfigError) as info:
        NocConfig.from_dict({"topology": "torus", "link_bandwidth_bytes_per_s": 1e9})
    msg = str(info.value)
    assert "field 'topology'" in msg and "'torus'" in msg
    assert "star, ring, mesh" in msg


def test_configs_are_frozen_and_replace_revalidates():
    cfg = DramConfig.from_dict(DRAM)
    with pytest.raises(AttributeError):
        cfg.channels = 3  # type: ignore[misc]
    assert cfg.replace(channels=4).channels == 4
    with pytest.raises(ConfigError, match="field 'channels'"):
        cfg.replace(channels=0)


# ---------------------------------------------------------------- YAML files


def test_yaml_unknown_field_names_file_and_line(tmp_path):
    path = write(tmp_path, "design.yaml", """
        extends: mixpe-w4a8
        name: my-design
        tile:
          pe_array:
            rows: 32
            colums: 32
        """)
    with pytest.raises(ConfigError) as info:
        load_design(path)
    msg = str(info.value)
    # 'colums' is on line 6 of the file
    assert msg.startswith(f"{path}:6: ")
    assert "field 'tile.pe_array.colums'" in msg


def test_yaml_bounds_error_names_file_line_field_and_value(tmp_path):
    path = write(tmp_path, "design.yaml", """
        extends: paper-int8
        name: bad
        frequency_hz: 500.0e6
        dram:
          latency_ns: -1.0
        """)
    with pytest.raises(ConfigError) as info:
        load_design(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:5: ")
    assert "field 'dram.latency_ns'" in msg and "-1.0" in msg


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "broken.yaml", """
        name: broken
        frequency_hz: 1.0e9
        tile: {pe_array: [1, 2
        dram: x
        """)
    with pytest.raises(ConfigError) as info:
        load_design(path)
    msg = str(info.value)
    # the flow sequence opened on line 3 is still open when 'dram:' on line 4 is read
    assert msg.startswith(f"{path}:4: malformed YAML")
    assert "\n" not in msg


def test_load_config_file_for_a_small_config(tmp_path):
    path = write(tmp_path, "dram.yaml", """
        channels: 4
        bandwidth_bytes_per_s: 2e9
        latency_ns: 30
        """)
    cfg = load_config_file(DramConfig, path)
    assert (cfg.channels, cfg.bandwidth_bytes_per_s, cfg.latency_ns) == (4, 2.0e9, 30.0)
    bad = write(tmp_path, "bad.yaml", """
        channels: 4
        bandwidth_bytes_per_s: 2e9
        latency_ns: 30
        interleave: 64
        """)
    with pytest.raises(ConfigError, match=rf"{bad}:4: field 'interleave': unknown field"):
        load_config_file(DramConfig, bad)


def test_json_design_file(tmp_path):
    path = tmp_path / "design.json"
    data = load_design("paper-int8").to_dict()
    data["name"] = "from-json"
    path.write_text(json.dumps(data), encoding="utf-8")
    cfg = load_design(path)
    assert cfg.name == "from-json"
    assert cfg.tile == load_design("paper-int8").tile


# ---------------------------------------------------------------- 1e9 floats


def test_exponent_floats_load_as_numbers():
    data, lines = parse_yaml_with_lines("a: 1e9\nb: 2.5e-3\nc: -3E2\nd: 1.0e9\ne: 7\n")
    assert data == {"a": 1.0e9, "b": 0.0025, "c": -300.0, "d": 1.0e9, "e": 7}
    assert isinstance(data["a"], float) and isinstance(data["e"], int)
    assert lines[("c",)] == 3
    # plain PyYAML (YAML 1.1) would have read '1e9' as a string
    assert yaml.safe_load("a: 1e9") == {"a": "1e9"}


def test_exponent_floats_in_a_design_file(tmp_path):
    path = write(tmp_path, "fast.yaml", """
        extends: mixpe-w4a8
        name: fast
        frequency_hz: 2e9
        noc: {link_bandwidth_bytes_per_s: 5e11}
        dram: {bandwidth_bytes_per_s: 8e11}
        """)
    cfg = load_design(path)
    assert cfg.frequency_hz == 2.0e9
    assert cfg.cycle_ns == 0.5  # 1e9 / 2e9
    assert cfg.noc.link_bandwidth_bytes_per_s == 5.0e11
    assert cfg.dram.bandwidth_bytes_per_s == 8.0e11
    assert cfg.dram.channels == 8  # kept from the base design's HBM2E


# ---------------------------------------------------------------- extends / DRAM presets


def test_extends_merges_nested_mappings(tmp_path):
    path = write(tmp_path, "small.yaml", """
        extends: mixpe-w4a8
        name: small
        num_tiles: 2
        tile:
          pe_array: {rows: 32}
          weight_buffer: {capacity_bytes: 65536}
        """)
    cfg = load_design(path)
    base = load_design("mixpe-w4a8")
    assert cfg.name == "small"
    assert cfg.num_tiles == 2
    assert cfg.tile.pe_array.rows == 32
    assert cfg.tile.pe_array.cols == 64  # untouched keys come from the base
    assert cfg.tile.pe_array.pe == base.tile.pe_array.pe
    assert cfg.tile.weight_buffer.capacity_bytes == 65536
    assert cfg.tile.weight_buffer.bank_width_bytes == 128
    assert cfg.dram == base.dram
    assert cfg.num_pes == 2 * 32 * 64


def test_extends_unknown_design_names_file_and_line(tmp_path):
    path = write(tmp_path, "x.yaml", """
        name: x
        extends: no-such-design
        """)
    with pytest.raises(ConfigError) as info:
        load_design(path)
    assert str(info.value).startswith(f"{path}:2: field 'extends': unknown design 'no-such-design'")


def test_dram_preset_in_a_design_file(tmp_path):
    path = write(tmp_path, "ddr.yaml", """
        name: ddr-box
        frequency_hz: 1.0e9
        quant: {weight_bits: 8, activation_bits: 8, group_size: 0, scale_bits: 0, zero_bits: 0}
        tile:
          pe_array: {pe: {kind: int8_mac}, rows: 16, cols: 16}
          weight_buffer: {capacity_bytes: 65536}
          activation_buffer: {capacity_bytes: 65536}
          output_buffer: {capacity_bytes: 65536}
        dram: {preset: ddr4-3200, channels: 4}
        """)
    cfg = load_design(path)
    assert cfg.dram.kind == "ddr4-3200"
    assert cfg.dram.channels == 4  # the file's own key wins over the preset
    assert cfg.dram.bandwidth_bytes_per_s == 51.2e9  # 2 x 25.6 GB/s from the preset
    assert cfg.dram.latency_ns == 50.0
    assert cfg.dram.row_buffer.row_bytes == 8192
    assert cfg.tile.pe_array.pe.kind == PeKind.INT8_MAC
    assert cfg.tile.pe_array.dataflows == (Dataflow.OUTPUT_STATIONARY,)


@pytest.mark.parametrize("dram_line", ["dram: {preset: lpddr5-6400}", "dram: lpddr5-6400"])
def test_dram_preset_replaces_the_extended_designs_dram(tmp_path, dram_line):
    path = write(tmp_path, "lp.yaml", f"extends: mixpe-w4a8\nname: lp\n{dram_line}\n")
    cfg = load_design(path)
    # every DRAM field comes from the LPDDR5 preset, none from the base design's HBM2E
    assert cfg.dram.kind == "lpddr5-6400"
    assert cfg.dram.channels == 4
    assert cfg.dram.bandwidth_bytes_per_s == 102.4e9
    assert cfg.dram.latency_ns == 100.0
    assert cfg.dram.row_buffer.banks_per_channel == 16
    assert cfg.dram.row_buffer.t_rcd_ns == 18.0


def test_unknown_dram_preset(tmp_path):
    path = write(tmp_path, "x.yaml", "extends: mixpe-w4a8\nname: x\ndram:\n  preset: gddr9\n")
    with pytest.raises(ConfigError) as info:
        load_design(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:4: unknown DRAM preset 'gddr9'")
    assert "hbm2e" in msg  # the known presets are listed


def test_unknown_design_name():
    with pytest.raises(ConfigError, match="unknown design 'nope'"):
        load_design("nope")


# ---------------------------------------------------------------- shipped designs


def test_shipped_designs_listed():
    names = design_names()
    for name in ("mixpe-w4a8", "mixpe-w4a16", "paper-int8", "paper-fp16", "paper-mixpe-w4a8",
                 "paper-mixpe-w4a16"):
        assert name in names
    assert not any(n.startswith("_") for n in names)  # bases are not designs


@pytest.mark.parametrize("name", design_names())
def test_round_trip_every_shipped_design(name, tmp_path):
    cfg = load_design(name)
    assert cfg.name == name
    data = cfg.to_dict()
    assert AcceleratorConfig.from_dict(data) == cfg
    # and through a YAML file on disk
    path = tmp_path / f"{name}-copy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_design(path) == cfg


def test_shipped_design_figures():
    cfg = load_design("mixpe-w4a8")
    # 8 tiles x 64 x 64 PEs; 1 GHz; HBM2E 8 x 51.2 GB/s
    assert cfg.num_pes == 8 * 64 * 64
    assert cfg.cycle_ns == 1.0
    assert cfg.dram.channel_bandwidth_bytes_per_s == 409.6e9 / 8
    assert cfg.noc.topology is Topology.STAR
    assert cfg.global_buffer.slot_bytes == 4 * 2**20 // 2
    paper = load_design("paper-mixpe-w4a8")
    # 1024 bit/cycle x 500 MHz / 8 bits per byte = 64 GB/s
    assert paper.dram.bandwidth_bytes_per_s == 1024 * 500e6 / 8
    assert paper.cycle_ns == 2.0
    assert paper.tile.weight_buffer.capacity_bytes == 128 * 1024
    assert paper.tile.activation_buffer.capacity_bytes == 256 * 1024
