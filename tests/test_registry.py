"""Loading profiles: built-ins, user files, and the errors bad input gets."""

from __future__ import annotations

from pathlib import Path

import pytest

import costmodel
from costmodel.errors import CostmodelError, UnknownNameError
from costmodel.registry import to_yaml

REQUIRED_MODELS = {
    "gpt2",
    "gpt2-xl",
    "llama-2-7b",
    "llama-2-13b",
    "llama-2-70b",
    "llama-3-8b",
    "llama-3-70b",
    "llama-3.1-405b",
    "mistral-7b",
    "mixtral-8x7b",
    "qwen2.5-7b",
    "gemma-7b",
    "phi-3-mini",
    "deepseek-v3",
    "mamba-2.8b",
}
REQUIRED_HARDWARE = {
    "h100-sxm",
    "h100-pcie",
    "h200",
    "b200",
    "a100-40gb",
    "a100-80gb",
    "a10g",
    "l4",
    "l40s",
    "rtx-4090",
    "mi300x",
    "tpu-v5e",
    "cpu",
}


def test_builtin_names() -> None:
    assert set(costmodel.list_models()) >= REQUIRED_MODELS
    assert set(costmodel.list_hardware()) >= REQUIRED_HARDWARE


@pytest.mark.parametrize("name", sorted(REQUIRED_MODELS))
def test_every_model_profile_loads_and_cites_a_source(name: str) -> None:
    model = costmodel.load_model(name)
    assert model.name == name
    assert model.source.startswith("https://")


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean 'llama-3-8b'"):
        costmodel.load_model("llama3-8b")
    with pytest.raises(UnknownNameError, match=r"Did you mean 'h100-pcie', 'h100-sxm'"):
        costmodel.load_hardware("h100")


def test_user_yaml_round_trips(tmp_path: Path) -> None:
    model = costmodel.load_model("deepseek-v3")
    path = tmp_path / "mine.yaml"
    path.write_text(to_yaml(model))
    assert costmodel.load_model(str(path)) == model


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n  bad: [", "not valid YAML at line"),
        ("- 1\n- 2\n", "must hold a YAML mapping"),
        (
            "name: x\nsource: s\nvocab_size: 10\nd_model: 64\nn_layers: 2\nn_heads: 8\nn_kv_heads: 3\nd_ff: 8\n"
            "max_context: 64\n",
            "n_kv_heads \\(3\\) must divide n_heads \\(8\\)",
        ),
        (
            "name: x\nsource: s\nvocab_size: 10\nd_model: 64\nn_layers: -2\nn_heads: 8\nd_ff: 8\nmax_context: 64\n",
            "n_layers: Input should be greater than 0",
        ),
        (
            "name: x\nsource: s\nvocab_size: 10\nd_model: 64\nn_layers: 2\nn_heads: 8\nd_ff: 8\nmax_context: 64\n"
            "n_expert: 4\n",
            "n_expert: unknown field",
        ),
        (
            "name: x\nsource: s\nvocab_size: 10\nd_model: 60\nn_layers: 2\nn_heads: 8\nd_ff: 8\nmax_context: 64\n",
            "set head_dim explicitly",
        ),
        (
            "name: x\nsource: s\nvocab_size: 10\nd_model: 64\nn_layers: 2\nn_heads: 8\nmax_context: 64\n"
            "moe: {n_experts: 4, top_k: 5, expert_d_ff: 8}\n",
            "top_k \\(5\\) is larger than moe.n_experts \\(4\\)",
        ),
    ],
)
def test_bad_model_files_get_one_clear_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(CostmodelError, match=message):
        costmodel.load_model(str(path))
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_bad_hf_configs(tmp_path: Path) -> None:
    with pytest.raises(CostmodelError, match=r"unsupported model_type 'bert'.*supported: deepseek_v3"):
        costmodel.ModelProfile.from_hf_config({"model_type": "bert"})
    with pytest.raises(CostmodelError, match="lacks 'hidden_size'"):
        costmodel.ModelProfile.from_hf_config({"model_type": "llama", "num_attention_heads": 8})
    bad = tmp_path / "config.json"
    bad.write_text("{ not json")
    with pytest.raises(CostmodelError, match="not valid JSON"):
        costmodel.ModelProfile.from_hf_config(bad)
    with pytest.raises(CostmodelError, match="cannot read"):
        costmodel.ModelProfile.from_hf_config(tmp_path / "missing.json")


def test_hf_config_path_loads_by_name(tmp_path: Path) -> None:
    from conftest import HF_CONFIGS

    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text((HF_CONFIGS / "llama-3-8b.json").read_text())
    model = costmodel.load_model(str(folder / "config.json"))
    assert model.name == "my-llama"
    assert costmodel.param_count(model).total == 8_030_261_248


def test_the_readme_lists_every_built_in_profile() -> None:
    """The README's Profiles section names every built-in model (a shared prefix may be written once:
    llama-2-7b/13b/70b) and every hardware profile."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Profiles") :]
    section = section[: section.index("\n## ", 1)]

    def listed(name: str) -> bool:
        base, _, last = name.rpartition("-")
        return name in section or bool(re.search(re.escape(base) + r"-[\w./]*/" + re.escape(last), section))

    assert [m for m in costmodel.list_models() if not listed(m)] == []
    assert [h for h in costmodel.list_hardware() if h not in section] == []
