"""Which fused-MoE calls run a tuned launch configuration and which fall back to the default one (vLLM's
Triton ``fused_moe`` kernel).

vLLM's Triton MoE kernel takes its tile sizes (``BLOCK_SIZE_M/N/K``, ``GROUP_SIZE_M``, warps, pipeline
stages) from a JSON file ``E=<experts>,N=<width>,device_name=<GPU>[,dtype=<format>][,block_shape=...]``
in ``vllm/model_executor/layers/fused_moe/configs/`` (tuned with ``benchmarks/kernels/benchmark_moe.py``
per model, device and format). ``E`` is the experts held by the GPU (``w2.shape[0]``: ``E / ep`` under expert
parallelism) and ``N`` the expert width on it (``I / tp``). Where no such file exists, ``get_default_config``
returns one fixed tile for every shape (``BLOCK_SIZE_M/N/K`` = 64/64/32, or 16/32/64 when the tokens do not
exceed the experts), and vLLM logs "Using default MoE config. Performance might be sub-optimal!"
(``get_moe_configs`` / ``try_get_optimal_moe_config`` in
https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/fused_moe/fused_moe.py).

The model (:mod:`costmodel.kernels.moe`) charges such a call ``default_config_ratio`` times the grouped GEMM
time of a tuned one. This module holds only *which* files exist: the file names of the configs folder for
the GPUs whose vLLM Triton MoE kernel costmodel has measurements of (one snapshot of vLLM's repository
listing, https://github.com/vllm-project/vllm/tree/main/vllm/model_executor/layers/fused_moe/configs, read in
2026; a release the public tables were measured with may ship a few files more or fewer, which the fitted
ratio then absorbs). No timing is stored here.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from costmodel.specs import HardwareProfile

VLLM_CONFIG_DTYPES: Final[dict[str, str]] = {
    "bf16": "",
    "fp8": ",dtype=fp8_w8a8",
    "fp8_block": ",dtype=fp8_w8a8,block_shape=[128,128]",
}
"""MoE format -> the file-name suffix vLLM looks up for it (``get_config_file_name``: no dtype for bf16;
``fp8_w8a8`` for fp8, with the 128 x 128 block shape for DeepSeek-style block scaling)."""


def _names(listing: str) -> frozenset[str]:
    """File names (without the device and ``.json``) from a whitespace-separated listing."""
    return frozenset(listing.split())


VLLM_TUNED_CONFIGS: Final[dict[str, frozenset[str]]] = {
    "NVIDIA_A100-SXM4-80GB": _names(
        """
        E=1,N=14336 E=1,N=1792 E=1,N=3584 E=1,N=7168 E=128,N=192
        E=16,N=1344 E=16,N=14336 E=16,N=1792 E=16,N=2688 E=16,N=3584 E=16,N=7168
        E=512,N=128 E=512,N=64 E=64,N=1280 E=64,N=640
        E=8,N=1792 E=8,N=2048 E=8,N=3584 E=8,N=4096 E=8,N=7168
        """
    ),
    "NVIDIA_H100_80GB_HBM3": _names(
        """
        E=1,N=3072 E=128,N=1856 E=128,N=192 E=128,N=384 E=128,N=512 E=128,N=928
        E=16,N=1344 E=16,N=1792 E=16,N=2688 E=256,N=512 E=32,N=1792
        E=512,N=128 E=512,N=256 E=512,N=512 E=62,N=256 E=62,N=512
        E=64,N=1280 E=64,N=1536 E=64,N=320 E=64,N=640 E=72,N=384 E=72,N=768
        E=8,N=1792 E=8,N=2048 E=8,N=3584 E=8,N=4096 E=8,N=7168
        E=128,N=192,dtype=fp8_w8a8,block_shape=[128,128] E=256,N=128,dtype=fp8_w8a8,block_shape=[128,128]
        E=256,N=384,dtype=fp8_w8a8,block_shape=[128,128] E=512,N=256,dtype=fp8_w8a8,block_shape=[128,128]
        """
    ),
    "NVIDIA_L40S": _names("E=128,N=1856 E=128,N=928 E=8,N=3584"),
    # no public kernel table for the GB200 (a transfer target of the B200's, docs/validation.md); listed
    # so a vLLM Triton MoE call priced on it runs the configs vLLM ships for it (session 18). Complete for
    # the names that sort before E=128,N=512 (the folder listing); past them, the files found among the
    # shapes of the built-in MoE models (E = experts, N = expert width / tp at tp 1-8) looked up one by one
    # (E=128,N=768 and E=256,N=512 in vLLM commit 47c4439a; E=384,N=256 fp8 block in 4f2a427d)
    "NVIDIA_GB200": _names(
        """
        E=128,N=1024 E=128,N=192 E=128,N=352 E=128,N=384 E=128,N=768
        E=256,N=128 E=256,N=256 E=256,N=512
        E=128,N=384,dtype=fp8_w8a8,block_shape=[128,128] E=128,N=768,dtype=fp8_w8a8,block_shape=[128,128]
        E=384,N=128,dtype=fp8_w8a8,block_shape=[128,128] E=384,N=256,dtype=fp8_w8a8,block_shape=[128,128]
        """
    ),
}
"""Per vLLM device name: the tuned config files (``E=..,N=..`` and the dtype suffix, without the device
and ``.json``) in vLLM's configs folder."""

VLLM_TRITON_KERNELS: Final = ("vllm_fused_moe", "triton_tritonexperts")
"""Kernel names (the end of a ``<format>:<engine>:<kernel>`` key) of vLLM's Triton ``fused_moe`` kernel,
the one that reads these files (the public tables' ``kernel_source``: ``vllm_fused_moe`` in vLLM 0.14,
``..._triton_tritonexperts`` in 0.24). Other kernels (FlashInfer, CUTLASS, TensorRT-LLM, Marlin, OpenAI's
triton_kernels) choose their tactics themselves."""


def reads_vllm_configs(key: str) -> bool:
    """True when the kernel of parameter key ``<format>:<engine>:<kernel>`` is vLLM's Triton fused_moe."""
    parts = key.split(":")
    return len(parts) >= 3 and parts[1] == "vllm" and parts[-1].endswith(VLLM_TRITON_KERNELS)


def vllm_device_name(hardware: HardwareProfile) -> str:
    """The ``device_name`` vLLM's config files for ``hardware`` are named by: the CUDA device name of the
    profile's datasheet (``datasheet.cuda_device_name``) with spaces as underscores (``get_config_file_name``
    in vLLM's ``fused_moe.py``); ``""`` where the profile states none (vLLM's default configuration)."""
    entry = hardware.datasheet.cuda_device_name
    return "" if entry is None else entry.value.replace(" ", "_")


def tuned_config(
    hardware: HardwareProfile, key: str, experts_per_gpu: npt.ArrayLike, width_per_gpu: npt.ArrayLike
) -> npt.NDArray[np.bool_]:
    """Per shape: does the call run a tuned launch configuration?

    True for every kernel other than vLLM's Triton fused_moe (they pick their tactics per shape), and for
    that kernel where vLLM ships ``E=<experts_per_gpu>,N=<width_per_gpu>`` for the device and format;
    False where it falls back to ``get_default_config`` — including every shape of a device or format
    without a listing here or a profile without a CUDA device name (:func:`vllm_device_name`).

    Parameters
    ----------
    hardware : the device's profile (its ``datasheet.cuda_device_name`` picks the listing).
    key : MoE parameter key ``<format>:<engine>:<kernel>``.
    experts_per_gpu : experts on the GPU, ``E / ep`` [-].  width_per_gpu : expert width on it, ``I / tp`` [-].
    """
    e, n = np.broadcast_arrays(np.asarray(experts_per_gpu), np.asarray(width_per_gpu))
    if not reads_vllm_configs(key):
        return np.ones(e.shape, dtype=bool)
    files = VLLM_TUNED_CONFIGS.get(vllm_device_name(hardware), frozenset())
    suffix = VLLM_CONFIG_DTYPES.get(key.split(":", 1)[0])
    if suffix is None or not files:
        return np.zeros(e.shape, dtype=bool)
    pairs, inverse = np.unique(
        np.stack([e.ravel(), n.ravel()], axis=-1).astype(np.float64), axis=0, return_inverse=True
    )
    found = np.array(
        [a % 1 == 0 and b % 1 == 0 and f"E={int(a)},N={int(b)}{suffix}" in files for a, b in pairs],
        dtype=bool,
    )  # one name per distinct (experts, width), not per row
    return np.asarray(found[inverse.ravel()].reshape(e.shape), dtype=bool)
