"""Parameter counts against independent oracles: transformers on the meta device and published counts."""

from __future__ import annotations

import pytest
from conftest import HF_CONFIGS
from oracles import hf_param_count

import costmodel
from costmodel.params import param_count

BUILTINS = costmodel.list_models()
HF_ONLY = ["falcon-7b", "pythia-1.4b"]  # model types from_hf_config supports without a built-in profile


def test_every_builtin_has_a_hub_config_fixture() -> None:
    assert {p.stem for p in HF_CONFIGS.glob("*.json")} >= set(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_total_equals_transformers_meta_model(name: str) -> None:
    model = costmodel.load_model(name)
    assert param_count(model).total == hf_param_count(HF_CONFIGS / f"{name}.json")


@pytest.mark.parametrize("name", BUILTINS + HF_ONLY)
def test_from_hf_config_equals_transformers_meta_model(name: str) -> None:
    model = costmodel.ModelProfile.from_hf_config(HF_CONFIGS / f"{name}.json")
    assert param_count(model).total == hf_param_count(HF_CONFIGS / f"{name}.json")


@pytest.mark.parametrize("name", BUILTINS)
def test_from_hf_config_round_trips_to_the_builtin(name: str) -> None:
    """The profile read from the Hub's config.json describes the same architecture as the built-in."""
    imported = costmodel.ModelProfile.from_hf_config(HF_CONFIGS / f"{name}.json")
    builtin = costmodel.load_model(name)
    assert param_count(imported) == param_count(builtin)
    skip: dict[str, object] = dict.fromkeys(("name", "source", "description", "max_context"), True)
    skip["checkpoint"] = {"source"}  # the built-in cites the model card; the import cites config.json
    skip["checkpoints"] = True  # other releases are listed in the built-ins only
    assert imported.model_dump(exclude=skip) == builtin.model_dump(exclude=skip)


# Published counts, each with its source.
PUBLISHED = {
    # Touvron et al. 2023 / the Llama-2-7b-hf safetensors index ("total_size" / 2 bytes = 6,738,415,616)
    "llama-2-7b": 6_738_415_616,
    # Radford et al. 2019, GPT-2 small as counted by nanoGPT's transformer_sizing.ipynb (124,439,808 with wpe)
    "gpt2": 124_439_808,
    # Meta-Llama-3-8B model card: 8.03B; safetensors index total_size 16,060,522,496 bytes / 2
    "llama-3-8b": 8_030_261_248,
    # Mixtral-8x7B: safetensors index total_size 93,405,585,408 bytes / 2
    "mixtral-8x7b": 46_702_792_704,
}


@pytest.mark.parametrize(("name", "count"), PUBLISHED.items())
def test_published_counts(name: str, count: int) -> None:
    assert param_count(costmodel.load_model(name)).total == count


def test_pythia_matches_the_pythia_paper() -> None:
    # Biderman et al. 2023, Table 1 ("Pythia-1.4B: 1,414,647,808 total parameters")
    model = costmodel.ModelProfile.from_hf_config(HF_CONFIGS / "pythia-1.4b.json")
    assert param_count(model).total == 1_414_647_808


def test_moe_active_parameters() -> None:
    # Jiang et al. 2024 (Mixtral): 47B total, 13B active; DeepSeek-V3 report: 671B total, 37B activated.
    mixtral = param_count(costmodel.load_model("mixtral-8x7b"))
    assert 12.8e9 < mixtral.active < 13.0e9
    expert = 3 * 4096 * 14336
    assert mixtral.total - mixtral.active == 32 * (8 - 2) * expert
    ds = param_count(costmodel.load_model("deepseek-v3"))
    assert 671.0e9 < ds.total < 671.1e9
    assert 37.0e9 < ds.active < 38.0e9


def test_dense_models_are_fully_active() -> None:
    for name in ("llama-3-8b", "gpt2", "mamba-2.8b"):
        p = param_count(costmodel.load_model(name))
        assert p.active == p.total


def test_breakdown_sums_to_total() -> None:
    p = param_count(costmodel.load_model("llama-2-7b"))
    d, L, V, f = 4096, 32, 32000, 11008
    assert p.embedding == V * d
    assert p.output_head == V * d
    assert p.attention == L * 4 * d * d
    assert p.mlp == L * 3 * d * f
    assert p.norms == (2 * L + 1) * d
    assert p.total == sum(v for k, v in p.as_dict().items() if k not in ("total", "active"))


def test_seed_formula_underestimates_llama_7b() -> None:
    """Seed 003: P ~ V d + 12 L d^2 "~ 7B"; it gives 6.57e9, short of the exact 6.74e9 by 2.5 %."""
    seed = 32_000 * 4096 + 32 * 12 * 4096**2
    exact = param_count(costmodel.load_model("llama-2-7b")).total
    assert seed == 6_573_522_944
    assert 0.02 < (exact - seed) / exact < 0.03


def test_gpt_oss_matches_its_model_card() -> None:
    """gpt-oss model card (arXiv:2508.10925, Table 1): 20.91B total / 3.61B active and 116.83B / 5.13B.
    Its active count leaves out the input embedding (a lookup) and keeps the unembedding."""
    for name, total, active in (("gpt-oss-20b", 20.91e9, 3.61e9), ("gpt-oss-120b", 116.83e9, 5.13e9)):
        p = param_count(costmodel.load_model(name))
        assert round(p.total / 1e7) == round(total / 1e7)
        assert round((p.active - p.embedding) / 1e7) == round(active / 1e7)


def test_qwen3_moe_active_parameters_match_the_names() -> None:
    # Qwen3 technical report (arXiv:2505.09388), Table 2: 30B-A3B "3B activated", 235B-A22B "22B"
    small = param_count(costmodel.load_model("qwen3-30b-a3b"))
    large = param_count(costmodel.load_model("qwen3-235b-a22b"))
    assert round(small.active / 1e8) == 34
    assert round(small.total / 1e8) == 305
    assert round(large.active / 1e9) == 22
    assert round(large.total / 1e9) == 235
    # each token uses 8 of 128 experts: the inactive rest is 120 experts x 3 x d x expert_d_ff per layer
    assert small.total - small.active == 48 * 120 * 3 * 2048 * 768


def test_qk_norm_and_sinks_are_per_layer_vectors() -> None:
    qwen = costmodel.load_model("qwen3-8b")
    plain = qwen.model_copy(update={"qk_norm": "none"})
    assert param_count(qwen).attention - param_count(plain).attention == 36 * 2 * 128
    oss = costmodel.load_model("gpt-oss-20b")
    no_sinks = oss.model_copy(update={"attention_sinks": False})
    assert param_count(oss).attention - param_count(no_sinks).attention == 24 * 64


def test_llama4_counts_and_the_17b_active_of_its_names() -> None:
    """Scout (16 experts, every layer MoE) and Maverick (128 experts, every 2nd layer MoE, dense
    layers of 16384 between): one routed and one shared expert per token in each, "17B active"."""
    scout = param_count(costmodel.load_model("llama-4-scout"))
    maverick = param_count(costmodel.load_model("llama-4-maverick"))
    assert round(scout.active / 1e9, 1) == 17.2
    assert round(maverick.active / 1e9, 1) == 17.2
    expert = 3 * 5120 * 8192
    assert scout.total - scout.active == 48 * 15 * expert
    assert maverick.total - maverick.active == 24 * 127 * expert
    assert maverick.mlp == 24 * 3 * 5120 * 16384
