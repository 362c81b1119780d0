"""Model specs: shipped Hugging Face configs, parameter counts, user configs, errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.errors import ConfigError
from mixpe_sys.workload.models import (Activation, ModelFamily, ModelSpec, NormKind, PositionEncoding,
                                       list_models, load_model, model_spec_from_hf_config, shipped_models)

# Published parameter counts (elements).
KNOWN_PARAMS = {
    "llama-2-7b": 6.74e9,
    "llama-2-13b": 13.0e9,
    "llama-2-70b": 68.98e9,
    "llama-3-8b": 8.03e9,
    "mistral-7b": 7.24e9,
    "opt-6.7b": 6.66e9,
    "opt-13b": 12.85e9,
}

HF_REPOS = {
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-hf",
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
    "opt-6.7b": "facebook/opt-6.7b",
    "opt-13b": "facebook/opt-13b",
}


def _shipped_config(name: str) -> dict:
    """The raw JSON of a shipped config, for building user files from it."""
    from importlib import resources
    text = resources.files("mixpe_sys.workload").joinpath("model_configs", f"{name}.json").read_text("utf-8")
    return json.loads(text)


def _write(path, data) -> str:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return str(path)


def test_shipped_names():
    assert shipped_models() == tuple(KNOWN_PARAMS)


@pytest.mark.parametrize("name", list(KNOWN_PARAMS))
def test_shipped_model_loads_with_known_parameter_count(name):
    spec = load_model(name)
    assert spec.name == name
    assert spec.hf_repo == HF_REPOS[name]
    assert spec.total_params == pytest.approx(KNOWN_PARAMS[name], rel=0.02)
    assert spec.head_dim * spec.num_heads == spec.hidden_size
    assert name in spec.describe()


def test_exact_counts_match_hand_computation():
    # Llama-2-7B: 32 * (4*4096^2 + 3*4096*11008 + 2*4096) + 2*32000*4096 + 4096
    llama = load_model("llama-2-7b")
    assert llama.layer_params == 202_383_360
    assert llama.total_params == 6_738_415_616
    # OPT-6.7B: biases and LayerNorm shifts, 2050-row position table, tied LM head.
    opt = load_model("opt-6.7b")
    layer = 4 * (4096 * 4096 + 4096) + (4096 * 16384 + 16384) + (16384 * 4096 + 4096) + 2 * 2 * 4096
    assert opt.layer_params == layer
    assert opt.total_params == 32 * layer + 50272 * 4096 + 2050 * 4096 + 2 * 4096
    assert opt.lm_head_params == 0


def test_grouped_query_attention_heads():
    big = load_model("llama-2-70b")
    assert (big.num_heads, big.num_kv_heads, big.gqa_group_size, big.kv_dim) == (64, 8, 8, 1024)
    assert big.kv_cache_elements_per_token == 2 * 80 * 1024
    for name in ("llama-3-8b", "mistral-7b"):
        spec = load_model(name)
        assert (spec.num_heads, spec.num_kv_heads, spec.kv_dim) == (32, 8, 1024)
    small = load_model("llama-2-7b")
    assert (small.num_kv_heads, small.kv_dim, small.gqa_group_size) == (32, 4096, 1)
    assert load_model("mistral-7b").sliding_window == 4096


def test_family_specific_fields():
    llama = load_model("llama-3-8b")
    assert llama.family is ModelFamily.LLAMA and llama.gated_ffn and llama.activation is Activation.SILU
    assert llama.norm is NormKind.RMSNORM and not llama.tie_word_embeddings
    assert llama.position_encoding is PositionEncoding.ROPE and llama.vocab_size == 128256
    opt = load_model("opt-13b")
    assert opt.family is ModelFamily.OPT and not opt.gated_ffn and opt.activation is Activation.RELU
    assert opt.norm is NormKind.LAYERNORM and opt.tie_word_embeddings and opt.attention_bias
    assert opt.intermediate_size == 20480 and opt.position_table_rows == 2050


def test_name_is_case_insensitive():
    assert load_model("  LLaMA-2-13B ") == load_model("llama-2-13b")


def test_list_models_frame():
    df = list_models()
    assert list(df.columns) == ["name", "family", "layers", "hidden", "ffn", "heads", "kv_heads",
                                "params_billion"]
    assert list(df["name"]) == list(KNOWN_PARAMS)
    row = df.set_index("name").loc["llama-2-70b"]
    assert (row["family"], row["layers"], row["kv_heads"]) == ("llama", 80, 8)
    assert row["params_billion"] == pytest.approx(68.98, rel=0.01)


def test_user_config_path_file_and_directory(tmp_path):
    folder = tmp_path / "my-mistral"
    folder.mkdir()
    data = _shipped_config("mistral-7b")
    data["num_hidden_layers"] = 4
    path = _write(folder / "config.json", data)
    spec = load_model(path)
    assert spec.name == "my-mistral" and spec.num_layers == 4 and spec.family is ModelFamily.MISTRAL
    assert load_model(folder) == spec
    assert load_model(folder / "config.json", name="tiny").name == "tiny"
    other = _write(tmp_path / "opt-tiny.json", {**_shipped_config("opt-6.7b"), "num_hidden_layers": 2})
    assert load_model(other).name == "opt-tiny"


def test_hf_defaults_when_optional_keys_absent():
    data = {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 688,
            "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000,
            "max_position_embeddings": 512, "num_key_value_heads": None}
    spec = model_spec_from_hf_config(data, "tiny")
    assert (spec.num_kv_heads, spec.head_dim, spec.activation, spec.tie_word_embeddings) == (
        4, 64, Activation.SILU, False)
    del data["architectures"]
    data["model_type"] = "mistral"
    assert model_spec_from_hf_config(data, "tiny").family is ModelFamily.MISTRAL


def test_missing_field_names_field_and_file(tmp_path):
    data = _shipped_config("llama-2-7b")
    del data["hidden_size"]
    path = _write(tmp_path / "broken.json", data)
    with pytest.raises(ConfigError, match=r"broken\.json.*'hidden_size'.*missing") as info:
        load_model(path)
    assert info.value.source == path


def test_unknown_architecture_names_field_file_and_line(tmp_path):
    data = {"architectures": ["GPT2LMHeadModel"], **{k: v for k, v in _shipped_config("llama-2-7b").items()
                                                     if k != "architectures"}}
    path = _write(tmp_path / "gpt2.json", data)
    with pytest.raises(ConfigError, match=r"gpt2\.json:2: field 'architectures'.*GPT2LMHeadModel"):
        load_model(path)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "hidden_size": 4096,\n  "vocab_size": 32000,,\n}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.json:3: malformed JSON") as info:
        load_model(str(path))
    assert info.value.line == 3


def test_top_level_not_an_object(tmp_path):
    path = _write(tmp_path / "list.json", [1, 2])
    with pytest.raises(ConfigError, match=r"list\.json.*JSON object"):
        load_model(path)


def test_nonexistent_name_or_file():
    with pytest.raises(ConfigError, match=r"llama-9-400b.*not a shipped model.*llama-2-7b"):
        load_model("llama-9-400b")
    with pytest.raises(ConfigError, match=r"nowhere\.json"):
        load_model("/nonexistent/nowhere.json")


@pytest.mark.parametrize("change, field", [
    ({"num_attention_heads": 33}, "num_attention_heads"),
    ({"num_key_value_heads": 5}, "num_key_value_heads"),
    ({"hidden_size": "big"}, "hidden_size"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"hidden_act": "tanh"}, "hidden_act"),
    ({"tie_word_embeddings": "no"}, "tie_word_embeddings"),
])
def test_bad_values_name_hf_field_and_file(tmp_path, change, field):
    path = _write(tmp_path / "edited.json", {**_shipped_config("llama-2-7b"), **change})
    with pytest.raises(ConfigError, match=rf"edited\.json:\d+: field '{field}'"):
        load_model(path)


def test_opt_embedding_projection_rejected(tmp_path):
    data = {**_shipped_config("opt-6.7b"), "word_embed_proj_dim": 512}
    path = _write(tmp_path / "opt-350m.json", data)
    with pytest.raises(ConfigError, match=r"opt-350m\.json:\d+: field 'word_embed_proj_dim'.*hidden_size"):
        load_model(path)


def test_model_spec_validation_names_field():
    base = load_model("llama-2-7b").to_dict()
    with pytest.raises(ConfigError, match="field 'num_heads'"):
        ModelSpec.from_dict({**base, "num_heads": 30, "head_dim": 0})
    with pytest.raises(ConfigError, match="field 'num_kv_heads'"):
        ModelSpec.from_dict({**base, "num_kv_heads": 3})
    with pytest.raises(ConfigError, match="field 'family'"):
        ModelSpec.from_dict({**base, "family": "gpt"})
    with pytest.raises(ConfigError, match="field 'position_table_rows'"):
        ModelSpec.from_dict({**base, "position_table_rows": 10})


def test_spec_round_trips_and_is_frozen():
    spec = load_model("opt-6.7b")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(AttributeError):
        spec.hidden_size = 1  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(kv_heads=st.integers(1, 8), group=st.sampled_from([1, 2, 4]), head_dim=st.sampled_from([8, 64, 128]),
       ffn=st.integers(1, 4096), layers=st.integers(1, 8), vocab=st.integers(1, 50000),
       gated=st.booleans(), tied=st.booleans())
def test_parameter_count_adds_up(kv_heads, group, head_dim, ffn, layers, vocab, gated, tied):
    heads = kv_heads * group
    h = heads * head_dim
    spec = ModelSpec(name="p", family=ModelFamily.LLAMA, hidden_size=h, intermediate_size=ffn,
                     num_layers=layers, num_heads=heads, num_kv_heads=kv_heads, vocab_size=vocab,
                     max_position_embeddings=128, gated_ffn=gated, tie_word_embeddings=tied)
    kv = kv_heads * head_dim
    layer = 2 * h * h + 2 * h * kv + (3 if gated else 2) * h * ffn + 2 * h
    assert spec.total_params == layers * layer + vocab * h + h + (0 if tied else vocab * h)
    # Fewer KV heads never adds weights.
    assert spec.total_params <= spec.replace(num_kv_heads=heads).total_params
