"""Model loading: the shipped Hugging Face configs, :func:`load_model` and :func:`list_models`.

The published configs of a few decoder-only models ship in
``mixpe_sys/workload/model_configs/`` (file name = short name + ``.json``; the
top-level ``_source`` key holds the Hugging Face repo id). :func:`load_model`
reads one of them, or any ``config.json`` a user points at, into a frozen
:class:`ModelSpec`; nothing is downloaded. The spec and its enums live in
:mod:`.model_spec`, the ``config.json`` parser in :mod:`.hf_config`; both are
re-exported here.

>>> spec = load_model("llama-2-70b")
>>> spec.num_heads, spec.num_kv_heads, spec.kv_dim
(64, 8, 1024)
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from .hf_config import model_spec_from_hf_config, parse_json_with_lines
from .model_spec import Activation, ModelFamily, ModelSpec, NormKind, PositionEncoding

__all__ = ["ModelFamily", "Activation", "NormKind", "PositionEncoding", "ModelSpec", "model_spec_from_hf_config",
           "shipped_models", "load_model", "list_models"]

_CONFIG_DIR = "model_configs"


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def shipped_models() -> tuple[str, ...]:
    """Short names of the model configs shipped with the package (e.g. ``llama-2-7b``)."""
    folder = resources.files(__package__).joinpath(_CONFIG_DIR)
    names = [p.name[:-len(".json")] for p in folder.iterdir() if p.name.endswith(".json")]
    return tuple(sorted(names, key=_natural_key))


def load_model(name_or_path: str | os.PathLike, *, name: str | None = None) -> ModelSpec:
    """Load a model spec by shipped short name (case-insensitive) or from a ``config.json`` path.

    Parameters
    ----------
    name_or_path:
        A name from :func:`shipped_models`, a path to a Hugging Face ``config.json``,
        or a directory holding one.
    name:
        Name for the spec; defaults to the short name, the file stem, or the
        directory name for a file called ``config.json``.

    Raises
    ------
    ConfigError
        Unknown name or unreadable file, malformed JSON (with line), or a missing
        or unsupported field (naming the field and file).
    """
    if isinstance(name_or_path, str) and name_or_path.strip().lower() in shipped_models():
        short = name_or_path.strip().lower()
        resource = resources.files(__package__).joinpath(_CONFIG_DIR, f"{short}.json")
        source = str(resource)
        data, lines = parse_json_with_lines(resource.read_text(encoding="utf-8"), source)
        return model_spec_from_hf_config(data, name or short, source, lines=lines)
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no such file, and not a shipped model name (shipped: {', '.join(shipped_models())})",
                          str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read model config: {exc.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("cannot read model config: not UTF-8 text", str(path)) from None
    data, lines = parse_json_with_lines(text, str(path))
    default = path.parent.name if path.stem.lower() == "config" and path.parent.name else path.stem
    return model_spec_from_hf_config(data, name or default, str(path), lines=lines)


def list_models() -> pd.DataFrame:
    """One row per shipped model: name, family, layers, hidden, ffn, heads, kv_heads, params_billion."""
    rows = []
    for short in shipped_models():
        spec = load_model(short)
        rows.append({"name": spec.name, "family": spec.family.value, "layers": spec.num_layers,
                     "hidden": spec.hidden_size, "ffn": spec.intermediate_size, "heads": spec.num_heads,
                     "kv_heads": spec.num_kv_heads, "params_billion": spec.total_params / 1e9})
    return pd.DataFrame(rows, columns=["name", "family", "layers", "hidden", "ffn", "heads", "kv_heads",
                                       "params_billion"])
