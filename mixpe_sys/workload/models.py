"""Transformer model specs read from Hugging Face ``config.json`` files.

The published configs of a few decoder-only models ship in
``mixpe_sys/workload/model_configs/`` (file name = short name + ``.json``; the
top-level ``_source`` key holds the Hugging Face repo id). :func:`load_model`
reads one of them, or any ``config.json`` a user points at, into a frozen
:class:`ModelSpec`; nothing is downloaded.

>>> spec = load_model("llama-2-70b")
>>> spec.num_heads, spec.num_kv_heads, spec.kv_dim
(64, 8, 1024)
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import pandas as pd

from ..config_base import ConfigBase, param, parse_yaml_with_lines
from ..errors import ConfigError

_CONFIG_DIR = "model_configs"


class ModelFamily(str, enum.Enum):
    """Model family; selects how a Hugging Face config is read."""

    LLAMA = "llama"
    MISTRAL = "mistral"
    OPT = "opt"


class Activation(str, enum.Enum):
    """FFN activation function."""

    SILU = "silu"
    RELU = "relu"
    GELU = "gelu"


class NormKind(str, enum.Enum):
    """Normalisation layer: RMSNorm (scale only) or LayerNorm (scale and shift)."""

    RMSNORM = "rmsnorm"
    LAYERNORM = "layernorm"


class PositionEncoding(str, enum.Enum):
    """Rotary embeddings (no weights) or a learned absolute position table."""

    ROPE = "rope"
    LEARNED = "learned"


@dataclass(frozen=True)
class ModelSpec(ConfigBase):
    """Shape of a decoder-only transformer: what the simulator needs to size its work.

    Weight parameter count (elements; ``h`` hidden, ``f`` FFN width, ``q`` =
    heads * head_dim, ``kv`` = KV heads * head_dim, ``V`` vocabulary, ``L`` layers)::

        attention = 2*h*q + 2*h*kv           (+ q + 2*kv + h if attention_bias)
        ffn       = 3*h*f if gated_ffn else 2*h*f   (+ 2*f + h, or f + h, if ffn_bias)
        norm      = h for RMSNorm, 2*h for LayerNorm; two per layer
        layer     = attention + ffn + 2*norm
        total     = L*layer + V*h (token embedding) + rows*h (learned positions)
                    + norm (final, if final_norm) + V*h (LM head, unless tied)

    Llama-2-7B: 32 * 202,383,360 + 2 * 32000 * 4096 + 4096 = 6,738,415,616.
    """

    name: str = param(help="short model name, e.g. llama-2-7b")
    family: ModelFamily = param(help="model family: llama, mistral or opt")
    hidden_size: int = param(help="model (residual stream) width", unit="elements", ge=1)
    intermediate_size: int = param(help="FFN inner width", unit="elements", ge=1)
    num_layers: int = param(help="number of decoder layers", unit="layers", ge=1)
    num_heads: int = param(help="query attention heads per layer", unit="heads", ge=1)
    num_kv_heads: int = param(help="key/value heads per layer (< num_heads: grouped-query attention)",
                              unit="heads", ge=1)
    vocab_size: int = param(help="vocabulary size", unit="tokens", ge=1)
    max_position_embeddings: int = param(help="longest sequence the model was trained for", unit="tokens", ge=1)
    head_dim: int = param(0, help="width of one attention head (0 = hidden_size // num_heads)",
                          unit="elements", ge=0)
    gated_ffn: bool = param(True, help="gated FFN with gate+up+down projections (SwiGLU); "
                                       "false = two projections (fc1, fc2)")
    activation: Activation = param(Activation.SILU, help="FFN activation: silu, relu or gelu")
    norm: NormKind = param(NormKind.RMSNORM, help="normalisation layer: rmsnorm or layernorm")
    tie_word_embeddings: bool = param(False, help="LM head shares the token-embedding weights")
    attention_bias: bool = param(False, help="Q/K/V/O projections carry a bias vector")
    ffn_bias: bool = param(False, help="FFN projections carry a bias vector")
    pre_norm: bool = param(True, help="normalise before attention and FFN (pre-LN); false = post-LN")
    final_norm: bool = param(True, help="a norm after the last layer, before the LM head")
    position_encoding: PositionEncoding = param(PositionEncoding.ROPE,
                                                help="rope (no weights) or learned absolute table")
    position_table_rows: int = param(0, help="rows of the learned position table (0 with rope)",
                                     unit="rows", ge=0)
    sliding_window: int = param(0, help="attention window (0 = full causal attention)", unit="tokens", ge=0)
    hf_repo: str = param("", help="Hugging Face repo id the config came from ('' if unknown)")

    def __post_init__(self) -> None:
        if self.head_dim == 0 and _is_count(self.hidden_size) and _is_count(self.num_heads):
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        super().__post_init__()

    def validate(self) -> None:
        if not self.name.strip():
            raise ConfigError("field 'name': must not be empty")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"field 'num_heads': must divide hidden_size ({self.hidden_size}), "
                              f"got {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"field 'num_kv_heads': must divide the number of attention heads "
                              f"({self.num_heads}), got {self.num_kv_heads}")
        if self.head_dim < 1:
            raise ConfigError(f"field 'head_dim': must be >= 1 elements, got {self.head_dim}")
        if self.position_encoding is PositionEncoding.LEARNED:
            if self.position_table_rows < self.max_position_embeddings:
                raise ConfigError(f"field 'position_table_rows': a learned table needs at least "
                                  f"max_position_embeddings ({self.max_position_embeddings}) rows, "
                                  f"got {self.position_table_rows}")
        elif self.position_table_rows:
            raise ConfigError(f"field 'position_table_rows': must be 0 with rotary embeddings, "
                              f"got {self.position_table_rows}")

    @property
    def q_dim(self) -> int:
        """Width of the query projection output, heads * head_dim (elements)."""
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the key (or value) projection output, KV heads * head_dim (elements)."""
        return self.num_kv_heads * self.head_dim

    @property
    def gqa_group_size(self) -> int:
        """Query heads sharing one KV head (1 = multi-head attention)."""
        return self.num_heads // self.num_kv_heads

    @property
    def norm_params(self) -> int:
        """Weights of one norm layer (elements)."""
        return self.hidden_size * (2 if self.norm is NormKind.LAYERNORM else 1)

    @property
    def attention_params_per_layer(self) -> int:
        """Q, K, V and O projection weights (and biases) of one layer (elements)."""
        h, q, kv = self.hidden_size, self.q_dim, self.kv_dim
        bias = q + 2 * kv + h if self.attention_bias else 0
        return 2 * h * q + 2 * h * kv + bias

    @property
    def ffn_params_per_layer(self) -> int:
        """FFN projection weights (and biases) of one layer (elements)."""
        h, f = self.hidden_size, self.intermediate_size
        if self.gated_ffn:
            return 3 * h * f + (2 * f + h if self.ffn_bias else 0)
        return 2 * h * f + (f + h if self.ffn_bias else 0)

    @property
    def layer_params(self) -> int:
        """Weights of one decoder layer: attention + FFN + two norms (elements)."""
        return self.attention_params_per_layer + self.ffn_params_per_layer + 2 * self.norm_params

    @property
    def embedding_params(self) -> int:
        """Token embedding plus learned position table (elements)."""
        return (self.vocab_size + self.position_table_rows) * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """LM head weights not shared with the embedding (elements; 0 if tied)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        """All weights: layers, embeddings, final norm and LM head (elements; see class docstring)."""
        final = self.norm_params if self.final_norm else 0
        return self.num_layers * self.layer_params + self.embedding_params + final + self.lm_head_params

    @property
    def kv_cache_elements_per_token(self) -> int:
        """K and V cache entries one token adds over all layers (elements)."""
        return 2 * self.num_layers * self.kv_dim

    def describe(self) -> str:
        """One-line summary, e.g. ``llama-2-70b: llama, 80 layers, hidden 8192, ...``."""
        ffn = f"{'gated ' if self.gated_ffn else ''}{self.activation.value}"
        window = f", window {self.sliding_window}" if self.sliding_window else ""
        return (f"{self.name}: {self.family.value}, {self.num_layers} layers, hidden {self.hidden_size}, "
                f"FFN {self.intermediate_size} ({ffn}), {self.num_heads} heads / {self.num_kv_heads} KV heads "
                f"x {self.head_dim}, vocab {self.vocab_size}, context {self.max_position_embeddings}"
                f"{window}, {self.total_params / 1e9:.2f} B params")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# --------------------------------------------------------------------------- Hugging Face configs

_REQUIRED = object()


class _HfReader:
    """Typed access to a Hugging Face config dict; errors name the key, file and JSON line."""

    def __init__(self, data: Mapping[str, Any], source: str | None, lines: Mapping[tuple, int]):
        self.data, self.source, self.lines = data, source, lines

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"field '{key}': {message}", self.source, self.lines.get((key,)))

    def _raw(self, key: str, default: Any) -> Any:
        value = self.data.get(key)
        if value is None:  # absent or JSON null: Hugging Face falls back to its default
            if default is _REQUIRED:
                what = "is null" if key in self.data else "missing required field"
                raise self.error(key, what)
            return default
        return value

    def get_int(self, key: str, default: Any = _REQUIRED) -> int:
        value = self._raw(key, default)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or int(value) != value):
            raise self.error(key, f"expected an integer, got {value!r}")
        return int(value)

    def get_bool(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def get_activation(self, key: str, default: str) -> Activation:
        value = self._raw(key, default)
        if value not in _HF_ACTIVATIONS:
            raise self.error(key, f"unsupported activation {value!r} (supported: {', '.join(_HF_ACTIVATIONS)})")
        return _HF_ACTIVATIONS[value]


_HF_ACTIVATIONS: Mapping[str, Activation] = MappingProxyType({
    "silu": Activation.SILU, "swish": Activation.SILU, "relu": Activation.RELU,
    "gelu": Activation.GELU, "gelu_new": Activation.GELU, "gelu_fast": Activation.GELU,
    "gelu_pytorch_tanh": Activation.GELU,
})

# ModelSpec keyword arguments, and the Hugging Face key each one came from.
_Converted = tuple[dict[str, Any], dict[str, str]]


def _llama_like(r: _HfReader, family: ModelFamily) -> _Converted:
    """LlamaForCausalLM / MistralForCausalLM: RMSNorm, rotary, SwiGLU, optional GQA."""
    heads = r.get_int("num_attention_heads")
    kw = dict(hidden_size=r.get_int("hidden_size"), intermediate_size=r.get_int("intermediate_size"),
              num_layers=r.get_int("num_hidden_layers"), num_heads=heads,
              num_kv_heads=r.get_int("num_key_value_heads", heads), head_dim=r.get_int("head_dim", 0),
              vocab_size=r.get_int("vocab_size"), max_position_embeddings=r.get_int("max_position_embeddings"),
              gated_ffn=True, activation=r.get_activation("hidden_act", "silu"), norm=NormKind.RMSNORM,
              tie_word_embeddings=r.get_bool("tie_word_embeddings", False),
              attention_bias=r.get_bool("attention_bias", False), ffn_bias=r.get_bool("mlp_bias", False),
              position_encoding=PositionEncoding.ROPE)
    if family is ModelFamily.MISTRAL:
        kw["sliding_window"] = r.get_int("sliding_window", 0)
    origin = dict(num_layers="num_hidden_layers", num_heads="num_attention_heads",
                  num_kv_heads="num_key_value_heads", activation="hidden_act", ffn_bias="mlp_bias")
    return kw, origin


def _opt(r: _HfReader, family: ModelFamily) -> _Converted:
    """OPTForCausalLM: LayerNorm, learned positions, ReLU fc1/fc2, biases, tied LM head."""
    hidden = r.get_int("hidden_size")
    proj = r.get_int("word_embed_proj_dim", hidden)
    if proj != hidden:
        raise r.error("word_embed_proj_dim", f"must equal hidden_size ({hidden}); OPT variants with "
                                             f"embedding projections (e.g. OPT-350m) are not supported, got {proj}")
    max_pos = r.get_int("max_position_embeddings")
    pre_norm = r.get_bool("do_layer_norm_before", True)
    bias = r.get_bool("enable_bias", True)
    heads = r.get_int("num_attention_heads")
    kw = dict(hidden_size=hidden, intermediate_size=r.get_int("ffn_dim"),
              num_layers=r.get_int("num_hidden_layers"), num_heads=heads, num_kv_heads=heads,
              vocab_size=r.get_int("vocab_size"), max_position_embeddings=max_pos, gated_ffn=False,
              activation=r.get_activation("activation_function", "relu"), norm=NormKind.LAYERNORM,
              tie_word_embeddings=r.get_bool("tie_word_embeddings", True),
              attention_bias=bias, ffn_bias=bias, pre_norm=pre_norm,
              final_norm=pre_norm and not r.get_bool("_remove_final_layer_norm", False),
              # OPT's learned position table holds 2 extra rows: positions are offset by 2.
              position_encoding=PositionEncoding.LEARNED, position_table_rows=max_pos + 2)
    origin = dict(intermediate_size="ffn_dim", num_layers="num_hidden_layers", num_heads="num_attention_heads",
                  num_kv_heads="num_attention_heads", activation="activation_function",
                  pre_norm="do_layer_norm_before", position_table_rows="max_position_embeddings")
    return kw, origin


_ARCHITECTURES: Mapping[str, ModelFamily] = MappingProxyType({
    "LlamaForCausalLM": ModelFamily.LLAMA,
    "MistralForCausalLM": ModelFamily.MISTRAL,
    "OPTForCausalLM": ModelFamily.OPT,
})

_CONVERTERS: Mapping[ModelFamily, Callable[[_HfReader, ModelFamily], _Converted]] = MappingProxyType({
    ModelFamily.LLAMA: _llama_like,
    ModelFamily.MISTRAL: _llama_like,
    ModelFamily.OPT: _opt,
})


def _family(r: _HfReader) -> ModelFamily:
    supported = ", ".join(_ARCHITECTURES)
    archs = r.data.get("architectures")
    if archs is None:
        model_type = r.data.get("model_type")
        if model_type in {f.value for f in ModelFamily}:
            return ModelFamily(model_type)
        raise r.error("architectures", f"missing, and model_type {model_type!r} is not known "
                                       f"(supported architectures: {supported})")
    if isinstance(archs, str):
        archs = [archs]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise r.error("architectures", f"expected a list of class names, got {archs!r}")
    for arch in archs:
        if arch in _ARCHITECTURES:
            return _ARCHITECTURES[arch]
    raise r.error("architectures", f"unsupported architecture {archs!r} (supported: {supported})")


_FIELD_RE = re.compile(r"^field '([^']+)'")


def model_spec_from_hf_config(data: Mapping[str, Any], name: str, source: str | None = None, *,
                              lines: Mapping[tuple, int] | None = None) -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed Hugging Face ``config.json``.

    Parameters
    ----------
    data:
        The config mapping (``architectures`` LlamaForCausalLM, MistralForCausalLM or
        OPTForCausalLM; without ``architectures``, ``model_type`` is used).
    name:
        Short name for the spec, e.g. ``llama-2-7b``.
    source:
        File the config came from, named in error messages.
    lines:
        Optional key-path -> 1-based line map of ``source``, for error messages.

    Raises
    ------
    ConfigError
        Naming the Hugging Face key, ``source`` and line of a missing, unsupported
        or inconsistent value.
    """
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a JSON object with model fields, got {type(data).__name__}", source, 1)
    reader = _HfReader(data, source, lines)
    family = _family(reader)
    kwargs, origin = _CONVERTERS[family](reader, family)
    repo = data.get("_source") or data.get("_name_or_path") or ""
    try:
        return ModelSpec(name=name, family=family, hf_repo=repo if isinstance(repo, str) else "", **kwargs)
    except ConfigError as exc:
        # Re-word ModelSpec's field names as the Hugging Face keys the user wrote.
        match = _FIELD_RE.match(exc.reason)
        field = match.group(1) if match else None
        key = origin.get(field, field) if field else None
        reason = exc.reason.replace(f"field '{field}'", f"field '{key}'", 1) if key else exc.reason
        raise ConfigError(reason, source, lines.get((key,)) if key else None) from None


def _parse_json(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """Parse JSON text; return the data and a best-effort key-path -> line map."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"malformed JSON: {exc.msg} (column {exc.colno})", source, exc.lineno) from None
    try:
        # JSON is close enough to YAML flow style to recover key lines; if not, go without.
        _, lines = parse_yaml_with_lines(text, source)
    except ConfigError:
        lines = {}
    return data, lines


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
        data, lines = _parse_json(resource.read_text(encoding="utf-8"), source)
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
    data, lines = _parse_json(text, str(path))
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
