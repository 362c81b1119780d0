"""Typed, frozen, validated config dataclasses loaded from YAML or JSON.

A config class is a frozen dataclass deriving from :class:`ConfigBase` whose
fields are declared with :func:`param` (a help string, a unit, and bounds).
Values are checked on construction (``ConfigError`` naming the field and the
bad value) and :meth:`ConfigBase.from_dict` builds nested configs, rejecting
unknown fields; :func:`load_config_file` reports the file and line of a bad
value.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

_MISSING = dataclasses.MISSING


_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it (faster)


class YamlLoader(_SafeBase):
    """SafeLoader that also reads ``1e9`` and ``1.0e9`` as floats (YAML 1.2 style)."""


YamlLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def param(default: Any = _MISSING, *, help: str, unit: str | None = None,
          ge: float | None = None, gt: float | None = None, le: float | None = None,
          default_factory: Any = _MISSING, key: str | None = None) -> Any:
    """Declare a config field with its help text, unit and bounds.

    Parameters
    ----------
    default, default_factory:
        As for :func:`dataclasses.field`.
    help:
        One-line description shown in the reference docs and error messages.
    unit:
        Unit of the value (``"bytes"``, ``"ns"``, ``"Hz"`` ...), or None.
    ge, gt, le:
        Inclusive lower, exclusive lower and inclusive upper bounds for numbers.
    key:
        The field's name in files and in :meth:`ConfigBase.to_dict` when it differs from the
        attribute's (default: the attribute's name).
    """
    meta = {"help": help, "unit": unit, "ge": ge, "gt": gt, "le": le, "key": key}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class LineMap:
    """1-based source lines of the keys of a parsed YAML document, by key path."""

    def __init__(self, source: str | None = None, lines: Mapping[tuple, int] | None = None):
        self.source = source
        self.lines = dict(lines or {})

    def line(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: tuple, message: str) -> ConfigError:
        name = ".".join(str(p) for p in path) or "<root>"
        return ConfigError(f"field '{name}': {message}", self.source, self.line(path))


def _hints(cls: type) -> dict[str, Any]:
    cache = cls.__dict__.get("_type_hints_cache")
    if cache is None:
        cache = typing.get_type_hints(cls)
        setattr(cls, "_type_hints_cache", cache)
    return cache


def file_keys(cls: type) -> dict[str, dataclasses.Field]:
    """``{key in files: field}`` of a config class (see ``key`` of :func:`param`)."""
    return {f.metadata.get("key") or f.name: f for f in dataclasses.fields(cls) if f.init}


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(tp: Any, value: Any, path: tuple, lm: LineMap) -> Any:
    """Convert ``value`` to type ``tp`` or raise a ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, path, lm)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else lm.error(path, f"bad value {_describe(value)}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise lm.error(path, f"expected a list, got {_describe(value)}")
        item_tp = args[0]
        return tuple(coerce(item_tp, v, path + (i,), lm) for i, v in enumerate(value))
    if origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise lm.error(path, f"expected a mapping, got {_describe(value)}")
        return {coerce(k_tp, k, path, lm): coerce(v_tp, v, path + (k,), lm) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, ConfigBase):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise lm.error(path, f"expected a mapping for {tp.__name__}, got {_describe(value)}")
        return tp._from_mapping(value, path, lm)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in tp)
            raise lm.error(path, f"unknown value {_describe(value)} (choose from: {allowed})") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise lm.error(path, f"expected true or false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (isinstance(value, float) and not math.isfinite(value)) or int(value) != value:
            raise lm.error(path, f"expected an integer, got {_describe(value)}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise lm.error(path, f"expected a number, got {_describe(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise lm.error(path, f"expected a finite number, got {_describe(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise lm.error(path, f"expected a string, got {_describe(value)}")
        return value
    if tp is Any:
        return value
    raise lm.error(path, f"unsupported field type {tp!r}")


@dataclasses.dataclass(frozen=True)
class ConfigBase:
    """Base of all config dataclasses: type and range checks, from_dict, to_dict."""

    def __post_init__(self) -> None:
        lm = LineMap()
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = coerce(hints[f.name], value, (f.name,), lm)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
            _check_bounds(f, coerced, (f.name,), lm)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override and raise ``ConfigError`` naming the field."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None,
                  lines: Mapping[tuple, int] | None = None):
        """Build a config from a mapping, rejecting unknown fields.

        Parameters
        ----------
        data:
            Field values; nested configs as nested mappings.
        source, lines:
            File name and key-path -> line map used in error messages.
        """
        lm = LineMap(source, lines)
        if not isinstance(data, Mapping):
            raise lm.error((), f"expected a mapping for {cls.__name__}, got {_describe(data)}")
        return cls._from_mapping(data, (), lm)

    @classmethod
    def from_nested(cls, data: Mapping[str, Any], path: tuple, lm: LineMap):
        """Build a config from a mapping found at key ``path`` of a larger document read into ``lm``
        (its errors name that path and its line)."""
        return cls._from_mapping(data, path, lm)

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], path: tuple, lm: LineMap):
        hints = _hints(cls)
        keys = file_keys(cls)
        for key in data:
            if key not in keys:
                known = ", ".join(sorted(keys))
                raise lm.error(path + (key,), f"unknown field for {cls.__name__} (known: {known})")
        kwargs = {}
        for key, f in keys.items():
            if key in data:
                kwargs[f.name] = coerce(hints[f.name], data[key], path + (key,), lm)
                _check_bounds(f, kwargs[f.name], path + (key,), lm)
            elif f.default is _MISSING and f.default_factory is _MISSING:
                raise lm.error(path + (key,), f"missing required field ({f.metadata.get('help', '')})")
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            # Cross-field validation: re-anchor the message at this config's path (and the field's line).
            if exc.source is None and lm.source is not None:
                reason, where = exc.reason, path
                found = re.match(r"field '([\w.]+)'", reason)
                if found and path and not found.group(1).startswith(".".join(map(str, path)) + "."):
                    where = path + tuple(found.group(1).split("."))
                    reason = f"field '{'.'.join(map(str, where))}'" + reason[found.end():]
                raise ConfigError(reason, lm.source, lm.line(where)) from None
            raise

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (enums as values, nested configs as dicts); round-trips through from_dict."""
        return {key: _plain(getattr(self, f.name)) for key, f in file_keys(type(self)).items()}

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_reference(cls) -> list[dict[str, Any]]:
        """Rows ``{field, type, unit, default, help}`` describing every field, for docs."""
        rows = []
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not _MISSING else (
                "(factory)" if f.default_factory is not _MISSING else "(required)")
            rows.append({"field": f.metadata.get("key") or f.name, "type": getattr(hints[f.name], "__name__", str(hints[f.name])),
                         "unit": f.metadata.get("unit") or "", "default": _plain(default),
                         "help": f.metadata.get("help", "")})
        return rows


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigBase):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_bounds(f: dataclasses.Field, value: Any, path: tuple, lm: LineMap) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    meta = f.metadata
    unit = f" {meta['unit']}" if meta.get("unit") else ""
    if meta.get("gt") is not None and not value > meta["gt"]:
        raise lm.error(path, f"must be > {meta['gt']}{unit}, got {value!r}")
    if meta.get("ge") is not None and not value >= meta["ge"]:
        raise lm.error(path, f"must be >= {meta['ge']}{unit}, got {value!r}")
    if meta.get("le") is not None and not value <= meta["le"]:
        raise lm.error(path, f"must be <= {meta['le']}{unit}, got {value!r}")


#: Most nodes a YAML document may expand to, aliases counted at every use: a config file has a few
#: hundred; the limit stops an alias bomb ("billion laughs") before it is expanded.
MAX_YAML_NODES = 100_000


def _yaml_error(exc: yaml.YAMLError, source: str | None) -> ConfigError:
    """One line naming the line of a YAML error (tag, syntax or constructor problems alike)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "constructor for the tag" in problem:
        found = re.search(r"'([^']*)'", problem)
        tag = (found.group(1) if found else "?").replace("tag:yaml.org,2002:", "!!")
        problem = f"unsupported tag '{tag}' (a config holds plain data only; tags are not executed)"
    return ConfigError(f"malformed YAML: {' '.join(problem.split())}", source, line)


def _check_nodes(root: yaml.Node, source: str | None) -> None:
    """Reject duplicate mapping keys and documents that expand to more than MAX_YAML_NODES nodes."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node, depth: int) -> int:
        # every node is sized once (aliases share the node), so this runs in the document's own length
        known = sizes.get(id(n))
        if known is not None:
            return known
        if depth > 200:
            raise ConfigError("malformed YAML: nesting deeper than 200 levels", source, n.start_mark.line + 1)
        total = 1
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise ConfigError(f"field '{k.value}': duplicate key (first given on line "
                                          f"{seen[k.value]})", source, k.start_mark.line + 1)
                    seen[k.value] = k.start_mark.line + 1
                total += size(k, depth + 1) + size(v, depth + 1)
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                total += size(v, depth + 1)
        if total > MAX_YAML_NODES:
            raise ConfigError(f"malformed YAML: the document expands to more than {MAX_YAML_NODES} values "
                              "(aliases counted at every use)", source, n.start_mark.line + 1)
        sizes[id(n)] = total
        return total

    size(root, 0)


def parse_yaml_with_lines(text: str, source: str | None = None) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML text; return the data and a map key path -> 1-based line.

    Duplicate keys in a mapping, tags other than plain data and documents
    expanding to more than :data:`MAX_YAML_NODES` values are rejected.

    Raises
    ------
    ConfigError
        On malformed YAML, naming the file and line.
    """
    loader = YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_nodes(node, source)
            data = loader.construct_document(node)  # from the composed node: the text is parsed once
        else:
            data = None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}

    def walk(n: Any, path: tuple) -> None:
        if n is None:
            return
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, path + (i,))

    walk(node, ())
    return data, lines


def read_config_data(path: str | Path) -> tuple[Any, dict[tuple, int]]:
    """Read a YAML or JSON file into plain data plus a key-path -> line map."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}); a config is a YAML or JSON text file",
                          str(path), line) from None
    if path.suffix.lower() == ".json":
        return parse_json(text, str(path)), {}
    return parse_yaml_with_lines(text, str(path))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"field '{key}': duplicate key")
        out[key] = value
    return out


def parse_json(text: str, source: str | None = None) -> Any:
    """Parse JSON text, rejecting duplicate keys (errors name the file and, where known, the line)."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"malformed JSON: {exc.msg}", source, exc.lineno) from None
    except ConfigError as exc:
        raise ConfigError(exc.reason, source) from None
    except RecursionError:
        raise ConfigError("malformed JSON: nested too deeply", source) from None


T = typing.TypeVar("T", bound=ConfigBase)


def load_config_file(cls: type[T], path: str | Path) -> T:
    """Load a config of class ``cls`` from a YAML or JSON file (errors name file and line)."""
    data, lines = read_config_data(path)
    return cls.from_dict(data, source=str(path), lines=lines)
