"""Design presets shipped as YAML in ``mixpe_sys/designs`` and user design files.

A design file may say ``extends: NAME`` to start from another design (its
mappings merged key by key) and ``dram: {preset: NAME, ...}`` to start from a
DRAM preset in ``mixpe_sys/designs/dram``. Files whose name starts with ``_``
are bases, not listed as designs.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .config_base import parse_yaml_with_lines, read_config_data
from .errors import ConfigError
from .hw.config import AcceleratorConfig
from .hw.pe import pe_model
from .hw.precision import quant_problem


def _preset_dir():
    return resources.files("mixpe_sys") / "designs"


def design_names() -> list[str]:
    """Names of the shipped design presets."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir()
                  if p.name.endswith(".yaml") and not p.name.startswith("_"))


def dram_preset_names() -> list[str]:
    """Names of the shipped DRAM presets."""
    return sorted(p.name[:-5] for p in (_preset_dir() / "dram").iterdir() if p.name.endswith(".yaml"))


def _read_preset(folder, name: str, what: str, source: str | None, line: int | None) -> tuple[Any, dict]:
    entry = folder / f"{name}.yaml"
    if not entry.is_file():
        known = design_names() if what == "design" else dram_preset_names()
        raise ConfigError(f"unknown {what} '{name}' (known: {', '.join(known)})", source, line)
    data, lines = _parsed_preset(entry.read_text(encoding="utf-8"), what, name)
    return copy.deepcopy(data), dict(lines)


@functools.lru_cache(maxsize=256)
def _parsed_preset(text: str, what: str, name: str) -> tuple[Any, dict]:
    """A preset's text parsed once per process (the cache is keyed by the text itself)."""
    return parse_yaml_with_lines(text, f"{what} preset {name}")


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _resolve(data: Any, lines: dict, source: str | None, depth: int = 0) -> Any:
    if not isinstance(data, dict):
        raise ConfigError("a design file must be a mapping of fields", source, 1)
    if depth > 8:
        raise ConfigError("field 'extends': chain deeper than 8 designs (a cycle?)", source, lines.get(("extends",)))
    data = dict(data)
    base_name = data.pop("extends", None)
    if base_name is not None:
        line = lines.get(("extends",))
        if not isinstance(base_name, str):
            raise ConfigError("field 'extends': expected a design name or a design file", source, line)
        if (_preset_dir() / f"{base_name}.yaml").is_file():
            base, base_lines = _read_preset(_preset_dir(), base_name, "design", source, line)
            base_source = f"design preset {base_name}"
        elif Path(base_name).suffix.lower() in (".yaml", ".yml", ".json"):
            # a file, relative to the file that extends it
            folder = Path(source).parent if source and Path(source).exists() else Path(".")
            base_path = Path(base_name) if Path(base_name).is_absolute() else folder / base_name
            if not base_path.is_file():
                raise ConfigError(f"field 'extends': no design file '{base_path}'", source, line)
            base, base_lines = read_config_data(base_path)
            base_source = str(base_path)
        else:
            raise ConfigError(f"field 'extends': unknown design '{base_name}' (known: {', '.join(design_names())}; "
                              f"or a .yaml/.json design file, relative to this one)", source, line)
        base = _resolve(base, base_lines, base_source, depth + 1)
        own_dram = data.get("dram")
        if isinstance(own_dram, str) or (isinstance(own_dram, dict) and "preset" in own_dram):
            # A DRAM preset replaces the base design's DRAM; only its own keys are merged over the preset.
            base = {k: v for k, v in base.items() if k != "dram"}
        data = _merge(base, data)
    dram = data.get("dram")
    if isinstance(dram, str):
        dram = {"preset": dram}
    if isinstance(dram, dict) and "preset" in dram:
        dram = dict(dram)
        name = dram.pop("preset")
        preset, _ = _read_preset(_preset_dir() / "dram", str(name), "DRAM preset", source,
                                 lines.get(("dram", "preset"), lines.get(("dram",))))
        data["dram"] = _merge(preset, dram)
    return data


def design_from_data(data: Any, *, source: str | None = None, lines: dict | None = None) -> AcceleratorConfig:
    """Build a design from parsed YAML/JSON data (resolving ``extends`` and DRAM presets).

    The file's ``quant`` is the scheme the design is built to run (``native_quant``, the scheme of a run
    that names none); it must be one its PE runs (:mod:`mixpe_sys.hw.precision`).
    """
    lines = lines or {}
    design = AcceleratorConfig.from_dict(_resolve(data, lines, source), source=source, lines=lines)
    found = quant_problem(design, design.native_quant)
    if found:
        field, reason = found
        line = lines.get(("quant", field)) or lines.get(("quant",)) or lines.get(("tile", "pe_array", "pe"))
        if "quant" not in _resolve(data, lines, source):
            reason += f"; the design gives no 'quant', so it has the default {design.native_quant.name} (group " \
                      f"{design.native_quant.group_size}): add a 'quant' mapping its PE runs"
        raise ConfigError(f"field 'quant.{field}': {reason}", source, line)
    return design


def read_preset_or_file(name_or_path: str | Path, what: str, names: list[str],
                        read_preset: Callable[[str], tuple[Any, dict]]) -> tuple[Any, str, dict, Path | None]:
    """``(data, source, key path -> line, path)`` of a shipped preset by name (one of ``names``, read by
    ``read_preset(name)``; path None) or of a YAML/JSON file by path; ``what`` names the kind in messages.

    Raises
    ------
    ConfigError
        Neither a known name nor a file name, or an unreadable or malformed file.
    """
    text = str(name_or_path)
    if text in names:
        data, lines = read_preset(text)
        return data, f"{what} preset {text}", lines, None
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        data, lines = read_config_data(path)
        return data, str(path), lines, path
    raise ConfigError(f"unknown {what} '{text}' (known: {', '.join(names)}; or give a YAML file)")


def _design_preset(name: str) -> tuple[Any, dict]:
    return _read_preset(_preset_dir(), name, "design", None, None)


def load_design(name_or_path: str | Path) -> AcceleratorConfig:
    """A shipped design by name, or a design YAML/JSON file by path.

    Raises
    ------
    ConfigError
        Unknown name, unreadable or malformed file, unknown or bad field (message names file and line).
    """
    data, source, lines, _ = read_preset_or_file(name_or_path, "design", design_names(), _design_preset)
    return design_from_data(data, source=source, lines=lines)


def design_sources(name_or_path: str | Path, config_file: str | Path | None = None) -> list[tuple[str, dict]]:
    """``(source, key path -> line)`` of the files a design's fields come from, most specific first:
    the ``config_file`` merged over it, the design file, then the designs it extends (for messages)."""
    out: list[tuple[str, dict]] = []
    try:
        if config_file is not None:
            data, lines = read_config_data(config_file)
            out.append((str(config_file), lines))
        text = str(name_or_path)
        if text in design_names():
            data, lines = _read_preset(_preset_dir(), text, "design", None, None)
            out.append((f"design preset {text}", lines))
        else:
            data, lines = read_config_data(text)
            out.append((text, lines))
        for _ in range(8):
            base = data.get("extends") if isinstance(data, dict) else None
            if not isinstance(base, str) or not (_preset_dir() / f"{base}.yaml").is_file():
                break
            data, lines = _read_preset(_preset_dir(), base, "design", None, None)
            out.append((f"design preset {base}", lines))
    except ConfigError:
        pass
    return out


def field_location(field: str, sources: list[tuple[str, dict]]) -> tuple[str, int | None] | None:
    """The file and line where a design field is set (see :func:`design_sources`), or None."""
    path = tuple(field.split("."))
    for source, lines in sources:
        if path in lines:
            return source, lines[path]
    for n in range(len(path) - 1, 0, -1):  # the nearest enclosing block
        for source, lines in sources:
            if path[:n] in lines:
                return source, lines[path[:n]]
    return None


def design_summary(design: AcceleratorConfig) -> dict[str, Any]:
    """One row of figures describing a design (peak rates at its native quantization, area in mm^2)."""
    from .area import area_mm2  # area builds on the energy constants, which import hw

    q = design.native_quant
    rate = pe_model(design.tile.pe_array.pe).macs_per_cycle(q.weight_bits, q.activation_bits, q.activation_format)
    arr = design.tile.pe_array
    return {"design": design.name, "quant": q.name, "tiles": design.num_tiles,
            "array": f"{arr.rows}x{arr.cols}", "pe": arr.pe.kind,
            "frequency_mhz": design.frequency_hz / 1e6,
            "peak_tmac_per_s": design.num_pes * float(rate) * design.frequency_hz / 1e12,
            "dram": design.dram.kind, "dram_gb_per_s": design.dram.bandwidth_bytes_per_s / 1e9,
            "area_mm2": area_mm2(design), "description": design.description}


def list_designs() -> pd.DataFrame:
    """One row per shipped design."""
    return pd.DataFrame([design_summary(load_design(n)) for n in design_names()])
