"""Resolving a sweep point's references: its design (base, design file or preset, parameters set) and
its workload's content (the model spec, the request trace's bytes), for running it and for its id."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError

DESIGN_PARAM = "design"  # a whole design (preset name or YAML file)
DRAM_PRESET_PARAM = "dram.preset"  # a DRAM preset replacing the design's DRAM


def resolve_ref(name: str, base_dir: str | Path) -> str:
    """A design or trace reference: a path relative to the sweep file when it names a file there."""
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml", ".json", ".csv", ".jsonl") and not path.is_absolute():
        candidate = Path(base_dir) / path
        if candidate.exists():
            return str(candidate)
    return name


def workload_content(workload: Any, base_dir: str | Path) -> dict[str, Any]:
    """What decides a workload's figures: its fields, the resolved model and the trace file's SHA-1.

    Raises
    ------
    ConfigError
        Unknown model, or a request trace that cannot be read.
    """
    from ..workload.models import load_model

    out = dict(workload.key())
    out["model"] = load_model(resolve_ref(workload.model, base_dir)).to_dict()
    out["model"].pop("name", None)
    if workload.requests is not None:
        trace = Path(resolve_ref(workload.requests, base_dir))
        try:
            out["requests"] = hashlib.sha1(trace.read_bytes()).hexdigest()
        except OSError as exc:
            raise ConfigError(f"cannot read request trace '{trace}': {exc.strerror}") from None
    return out


def build_design(base: str, params: Mapping[str, Any], base_dir: str | Path, name: str):
    """A point's design: its ``design`` (or ``base``) with its parameters set (see :func:`design_for_point`)."""
    from ..designs import design_from_data, load_design

    params = dict(params)
    design = load_design(resolve_ref(str(params.pop(DESIGN_PARAM, base)), base_dir))
    data = design.to_dict()
    if DRAM_PRESET_PARAM in params:
        # the preset replaces the design's DRAM; other dram.* parameters are set over it
        data["dram"] = {"preset": params.pop(DRAM_PRESET_PARAM)}
    for path in sorted(params, key=lambda p: p.count(".")):  # a whole sub-config before fields inside it
        _set_path(data, path.split("."), params[path], path)
    data["name"] = name
    return design_from_data(data, source=f"sweep point {name}")


def _set_path(data: dict, parts: list[str], value: Any, path: str) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            node[part] = child = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"field '{path}': '{'.'.join(parts[:i + 1])}' is not a mapping")
        node = child
    last = parts[-1]
    if isinstance(value, Mapping) and isinstance(node.get(last), dict):
        node[last] = {**node[last], **value}
    else:
        node[last] = value
