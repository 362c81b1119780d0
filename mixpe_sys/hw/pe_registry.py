"""The registry of processing-element types: kind names and the classes registered under them.

:class:`~mixpe_sys.hw.pe.PeModel` subclasses register here when they are
defined; configs check a ``kind`` against it. This module depends on nothing
else in the hardware package, so the configs can check kinds without importing
the PE models.
"""

from __future__ import annotations

import re

from ..errors import ConfigError


class PeKind:
    """Names of the built-in processing-element types (plain strings).

    ``PeConfig.kind`` is any name in the registry: these, or the kind of a
    user's :class:`~mixpe_sys.hw.pe.PeModel` subclass.
    """

    MIXPE_W4A8 = "mixpe_w4a8"
    MIXPE_W4A16 = "mixpe_w4a16"
    INT8_MAC = "int8_mac"
    FP16_MAC = "fp16_mac"
    PAPER_RULE = "paper_rule"
    DEQUANT_W4A16 = "dequant_w4a16"  # TensorRT-LLM style: FP16 MAC behind an in-loop INT4 -> FP16 converter
    DEQUANT_W4A8 = "dequant_w4a8"  # QServe style: INT8 MAC behind an in-loop INT4 -> INT8 converter
    BITFUSION = "bitfusion"  # BitFusion fusion unit of 2-bit x 2-bit BitBricks
    ANT = "ant"  # ANT 4-bit PE with a numeric-type decoder
    TENSOR_CORE = "tensor_core"  # a GPU SM's tensor cores: FP16/BF16 at the base rate, INT8 x2, INT4 x4


#: The built-in PE kind names, in declaration order.
BUILTIN_PE_KINDS: tuple[str, ...] = tuple(v for k, v in vars(PeKind).items() if k.isupper())

_KIND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class PeRegistry:
    """Kind name -> PE class. One instance, :data:`PE_TYPES`, holds the registered types."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def add(self, cls: type, kind: str) -> None:
        """Register ``cls`` under ``kind`` (a class defined twice under one name replaces itself)."""
        if not isinstance(kind, str) or not _KIND_NAME.fullmatch(kind):
            raise ValueError(f"PE kind {kind!r} of {cls.__qualname__}: use letters, digits, '_', '.' or '-'")
        old = self._classes.get(kind)
        if old is not None and old is not cls and not _same_definition(old, cls):
            raise ValueError(f"PE kind '{kind}' is already registered by {old.__module__}.{old.__qualname__}; "
                             f"choose another kind name for {cls.__module__}.{cls.__qualname__}")
        self._classes[kind] = cls

    def remove(self, kind: str) -> None:
        """Remove a user PE type (built-in kinds cannot be removed; unknown kinds are ignored)."""
        if kind in BUILTIN_PE_KINDS:
            raise ValueError(f"PE kind '{kind}' is built in and cannot be unregistered")
        self._classes.pop(kind, None)

    def get(self, kind: str) -> type:
        """The class registered under ``kind``; ConfigError listing the known kinds if none."""
        try:
            return self._classes[kind]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown PE kind {kind!r} (registered: {', '.join(self.kinds())}; "
                              "add one by subclassing mixpe_sys.hw.pe.PeModel)") from None

    def kinds(self) -> list[str]:
        """Every registered kind, sorted."""
        return sorted(self._classes)


def _same_definition(a: type, b: type) -> bool:
    """True when ``a`` and ``b`` are one class definition run twice (a module re-imported or reloaded)."""
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


#: The registry of PE types. Like Python's own import system it is process-wide: defining a
#: PeModel subclass adds its kind, so a design file can name it.
PE_TYPES = PeRegistry()


def unknown_pe_kind(kind: str) -> str | None:
    """Why ``kind`` is not a registered PE kind, or None if it is."""
    try:
        PE_TYPES.get(kind)
    except ConfigError as exc:
        return exc.reason
    return None
