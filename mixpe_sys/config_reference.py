"""Markdown reference of every config field (type, unit, default, meaning), generated from the dataclasses.

``python -m mixpe_sys.config_reference > docs/reference.md`` regenerates the
page; the tests check the committed page is current.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from .config_base import ConfigBase
from .hw import config as hw
from .hw.launch import LaunchConfig
from .system import config as system
from .workload import paper
from .workload.quant import QuantScheme

#: Config classes in the order a design file nests them.
CLASSES: tuple[type[ConfigBase], ...] = (
    hw.AcceleratorConfig, hw.TileConfig, hw.PeArrayConfig, hw.PeConfig, hw.SramConfig, hw.DequantConfig,
    hw.VectorUnitConfig, hw.DramConfig, hw.RowBufferConfig, hw.NocConfig, LaunchConfig, QuantScheme, paper.PaperProfile,
    paper.PaperOverride, system.SystemConfig, system.TopologyConfig, system.LinkConfig, system.EdgeConfig,
)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(inner) + (" or null" if type(None) in args else "")
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if isinstance(tp, type) and issubclass(tp, ConfigBase):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    if isinstance(tp, type) and hasattr(tp, "__members__"):
        return " or ".join(f"`{m.value}`" for m in tp)
    return getattr(tp, "__name__", str(tp))


def reference_markdown() -> str:
    """The reference page as Markdown."""
    out = ["# Config reference", "",
           "Every field of a design file (and of the quantization scheme), generated from the config",
           "dataclasses by `python -m mixpe_sys.config_reference`. Units are in the field names; a design",
           "file may also say `extends: PRESET` and `dram: {preset: NAME, ...}`. A system file (several chips,",
           "their links and the parallelism; `mixpe_sys/systems/*.yaml`) is a SystemConfig.", ""]
    for cls in CLASSES:
        hints = typing.get_type_hints(cls)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        out += [f"## {cls.__name__}", "", doc, "", "| field | type | unit | default | meaning |",
                "|---|---|---|---|---|"]
        for row, f in zip(cls.field_reference(), dataclasses.fields(cls)):
            default = row["default"]
            default = "required" if default == "(required)" else ("(empty)" if default == "" else f"`{default}`")
            out.append(f"| `{row['field']}` | {_type_name(hints[f.name])} | {row['unit']} | {default} "
                       f"| {row['help']} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
