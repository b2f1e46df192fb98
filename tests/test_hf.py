"""Reading Hugging Face config.json files: every supported config of the public GPU data counts like
transformers, nested text_config files are read through, and anything unsupported is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import HF_CONFIGS
from oracles import hf_language_config, hf_param_count

import costmodel
from costmodel.errors import CostmodelError
from costmodel.hf import SUPPORTED_MODEL_TYPES
from costmodel.params import param_count

PUBLIC = HF_CONFIGS / "public-gpu"
PUBLIC_CONFIGS = sorted(PUBLIC.glob("*_config.json"))
WORKSPACE_FOLDER = Path(__file__).parents[1] / ".." / "shared" / "data" / "public-gpu" / "model_configs"


def language_model_type(config: dict[str, object]) -> object:
    text = config.get("text_config")
    return text.get("model_type") if isinstance(text, dict) else config.get("model_type")


@pytest.mark.parametrize("path", PUBLIC_CONFIGS, ids=lambda p: p.name.removesuffix("_config.json"))
def test_every_supported_public_config_counts_like_transformers(path: Path) -> None:
    model = costmodel.ModelProfile.from_hf_config(path)
    assert param_count(model).total == hf_param_count(path)


@pytest.mark.skipif(not WORKSPACE_FOLDER.is_dir(), reason="the workspace's public-gpu folder is absent")
def test_the_vendored_copy_holds_every_supported_config_of_the_folder() -> None:
    """Every config of the folder either loads (and is vendored, so the test above counts it) or is
    refused by name: an unsupported model_type, or a field value costmodel cannot represent."""
    for path in sorted(WORKSPACE_FOLDER.glob("*_config.json")):
        config = json.loads(path.read_text())
        if "quant" in path.name and "model_type" not in config:
            continue  # *_hf_quant_config.json: a quantization recipe, not a model
        copy = PUBLIC / path.name
        if not copy.is_file():  # refused by name
            supported = language_model_type(config) in SUPPORTED_MODEL_TYPES
            reason = "is not supported \\(supported: " if supported else "unsupported model_type"
            with pytest.raises(CostmodelError, match=reason):
                costmodel.ModelProfile.from_hf_config(path)
            continue
        assert copy.read_bytes() == path.read_bytes()


def test_an_unsupported_model_type_names_it_and_lists_the_supported_ones() -> None:
    with pytest.raises(CostmodelError) as err:
        costmodel.ModelProfile.from_hf_config({"model_type": "mimo_v2_flash", "hidden_size": 4096})
    message = str(err.value)
    assert "'mimo_v2_flash'" in message
    assert all(t in message for t in SUPPORTED_MODEL_TYPES)
    assert "\n" not in message


def test_an_unsupported_text_config_names_both_model_types() -> None:
    config = {"model_type": "qwen3_vl", "text_config": {"model_type": "qwen3_vl_text"}}
    with pytest.raises(CostmodelError, match="'qwen3_vl_text' \\(text_config of model_type 'qwen3_vl'\\)"):
        costmodel.ModelProfile.from_hf_config(config)


def test_a_text_config_is_read_through() -> None:
    """Kimi-K2.5 wraps the Kimi-K2 (DeepSeek-V3 architecture) text model; both read the same."""
    k25 = costmodel.ModelProfile.from_hf_config(PUBLIC / "moonshotai--Kimi-K2.5_config.json")
    k2 = costmodel.ModelProfile.from_hf_config(PUBLIC / "moonshotai--Kimi-K2-Instruct_config.json")
    assert param_count(k25) == param_count(k2)
    # the wrapper's quantization recipe reaches the text model
    gpt_oss = json.loads((HF_CONFIGS / "gpt-oss-20b.json").read_text())
    recipe = gpt_oss.pop("quantization_config")
    wrapped = {"model_type": "wrapper", "quantization_config": recipe, "text_config": gpt_oss}
    model = costmodel.ModelProfile.from_hf_config(wrapped)
    assert model.checkpoint is not None
    assert model.checkpoint.experts == "mxfp4"
    assert param_count(model) == param_count(costmodel.load_model("gpt-oss-20b"))


QWEN3_MOE = json.loads((HF_CONFIGS / "qwen3-30b-a3b.json").read_text())


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"decoder_sparse_step": 2}, "decoder_sparse_step"),
        ({"mlp_only_layers": [5, 9]}, "mlp_only_layers"),
        ({"shared_expert_intermediate_size": 512}, "shared_expert_intermediate_size"),
    ],
)
def test_qwen3_moe_layouts_costmodel_cannot_represent_are_refused(
    update: dict[str, object], field: str
) -> None:
    with pytest.raises(CostmodelError, match=f"{field} = .* is not supported \\(supported: "):
        costmodel.ModelProfile.from_hf_config(QWEN3_MOE | update)


def test_qwen3_moe_leading_dense_layers_count_like_transformers(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(QWEN3_MOE | {"mlp_only_layers": [0, 1], "num_hidden_layers": 6}))
    model = costmodel.ModelProfile.from_hf_config(path)
    assert model.moe is not None
    assert model.moe.first_dense_layers == 2
    assert param_count(model).total == hf_param_count(path)


def test_qwen3_windowed_layers_are_the_ones_transformers_windows() -> None:
    config = json.loads((HF_CONFIGS / "qwen3-8b.json").read_text())
    config |= {"use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 30}
    model = costmodel.ModelProfile.from_hf_config(config)
    assert model.layer_types == tuple(hf_language_config(config).layer_types)
    assert model.attention_windows == {None: 30, 4096: 6}


def test_gpt_oss_unknown_layer_type_is_refused() -> None:
    config = json.loads((HF_CONFIGS / "gpt-oss-20b.json").read_text())
    config["layer_types"] = ["chunked_attention"] * 24
    with pytest.raises(CostmodelError, match="layer_types = 'chunked_attention' is not supported"):
        costmodel.ModelProfile.from_hf_config(config)


def test_gpt_oss_reads_its_mxfp4_recipe() -> None:
    model = costmodel.ModelProfile.from_hf_config(HF_CONFIGS / "gpt-oss-20b.json")
    assert model.checkpoint is not None
    assert model.checkpoint.component_dtypes == {"experts": "mxfp4"}
    assert model.checkpoint.weight_dtype == "bf16"


def test_glm_5_2_shared_indexers_are_refused_by_name() -> None:
    """GLM-5.2 shares one indexer among several layers (indexer_types 'shared'); counting an indexer in
    every layer would over-count by 534,198,528 parameters, so the reader refuses it."""
    config = json.loads((HF_CONFIGS / "glm-5.json").read_text())
    config["indexer_types"] = ["full", "shared", "shared", "shared"] * 19 + ["full", "full"]
    with pytest.raises(CostmodelError, match="indexer_types = 'shared' is not supported"):
        costmodel.ModelProfile.from_hf_config(config)
