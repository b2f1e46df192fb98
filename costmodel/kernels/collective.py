"""Time of one collective (all-reduce, all-gather, reduce-scatter, all-to-all) among GPUs of one node.

Latency plus size over bandwidth, for the faster of two algorithms, the way NCCL's tuner and the engines'
custom all-reduce choose by message size:

    t = max(host_floor_s, smoothmin(t_small, t_large)),  smoothmin(a, b) = (a^-q + b^-q)^(-1/q)
    t_small = small_latency_s + hop_latency_s x hops(op, n)
              + bytes x f_small(op, n) x c(n)
                / (link_bandwidth x large_bandwidth_fraction x small_bandwidth_ratio)
    t_large = small_latency_s + large_extra_latency_s + hop_latency_s x steps(op, n)
              + bytes x f_large(op, n) x c(n) / (link_bandwidth x large_bandwidth_fraction)

- ``bytes`` is the collective's buffer: the all-reduce's input (= output), the all-gather's output, the
  reduce-scatter's input, the all-to-all's send buffer (nccl-tests' ``size``).
- The large-message algorithm is the bandwidth-optimal one: a ring (or the two-shot custom all-reduce:
  reduce-scatter then all-gather), whose per-GPU traffic gives NCCL's bus-bandwidth factors
  ``f_large = 2 (n - 1) / n`` for all-reduce and ``(n - 1) / n`` for all-gather, reduce-scatter and
  all-to-all (NCCL tests, "Performance reported by NCCL tests",
  https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md; Patarasuk & Yuan 2009,
  https://doi.org/10.1016/j.jpdc.2008.09.002); ``steps`` = ``2 (n - 1)`` ring steps for all-reduce,
  ``n - 1`` otherwise; ``hops`` = ``n - 1`` for a one-shot custom all-reduce (one flag write to every
  peer at once) and ``steps(op, n)`` for NCCL's ring, whose LL protocol passes the same ring steps as its
  Simple one (NCCL's tuning model prices every ring protocol as ``baseLat + nsteps x hwLat``,
  ``ncclTopoTuneModel``, https://github.com/NVIDIA/nccl/blob/b6475625fbcaa2c3c0e50eed2fa1255d7514d4a2/src/graph/tuning.cc).
  NVLS (NVLink SHARP reduction in the switch) and NCCL's Simple protocol live in
  the fitted ``large_bandwidth_fraction`` and ``large_extra_latency_s``.
- The small-message algorithm is latency-optimal: the one-shot custom all-reduce, where every GPU reads
  all ``n - 1`` peers' full buffers at once (``f_small = n - 1``; vLLM's ``custom_all_reduce.cuh``,
  https://github.com/vllm-project/vllm/blob/main/csrc/custom_all_reduce.cuh, and TensorRT-LLM's
  ``customAllReduceKernels.cu``), or, for NCCL, the ring with the LL protocol (8-byte stores carrying a
  4-byte flag, so about half the link bandwidth; NCCL's tuning model,
  https://github.com/NVIDIA/nccl/blob/master/src/graph/tuning.cc) with the ring factors.
- ``c(n) = (n - 1) ^ contention_exponent`` on switched links (NVLink / NVSwitch): every GPU has its own
  full-rate port, so the exponent is about 0 (slightly negative in the data: two GPUs reach a lower bus
  bandwidth than eight).

Devices whose GPUs meet only over PCIe (``datasheet.intra_node_link == "pcie"``; L40S servers) differ in
two ways, each from a documented rule rather than a fitted curve:

- vLLM runs its custom all-reduce there only between two GPUs ("Custom allreduce is disabled because it's
  not supported on more than two PCIe-only GPUs", ``CustomAllreduce.__init__`` in
  https://github.com/vllm-project/vllm/blob/main/vllm/distributed/device_communicators/custom_all_reduce.py);
  with more GPUs the same call is NCCL's ring (LL protocol for small messages), whatever the key. On two
  GPUs the custom kernel (one-shot on two GPUs at every size) takes messages below its 8 MiB buffer and
  NCCL's ring the larger ones (``should_custom_ar``: ``inp_size < self.max_size``;
  :data:`VLLM_CUSTOM_MAX_BYTES`), by size, not as the faster of the two: over one PCIe link both run at
  the link's rate, and a smooth minimum of two equal times would be 2^(-1/q) of either
  (:data:`SWITCH_SHARPNESS`), 16 % faster than both.
- NCCL's ring among more than two PCIe GPUs crosses the host (the CPU root complex, or host memory where
  the GPUs sit under different root ports and peer-to-peer is off), a path all ``n`` GPUs share: each GPU
  gets ``host_bandwidth_ratio x link_bandwidth / n``, not its own link's rate. The measured L40S tables
  show it: the bus bandwidth of a large all-reduce falls from 19 GB/s on 2 GPUs to 3.7 on 4 and 2.0 on 8,
  i.e. n x per-GPU rate stays near 15 GB/s on 4 and 8 GPUs.

``link_bandwidth`` is the datasheet's per-direction intra-node bandwidth (NVLink or PCIe).

The engines switch implementation at fixed sizes rather than taking the faster path, and the model follows
them where they publish the sizes: beyond its largest own all-reduce an engine calls NCCL
(:func:`runs_on_nccl`: the rows and serving calls take the device's NCCL parameters), and vLLM's keys time
the path vLLM runs at each size (:func:`vllm_paths`: one-shot, two-shot, torch symmetric memory's two-shot
or multimem) instead of the smooth minimum.

Across nodes (:func:`multi_node_s`): a group spread over ``N`` nodes of ``g`` GPUs each runs the hierarchical
algorithm of rail-optimized clusters, where every GPU of a node has its own NIC (its "rail") on a network
plane shared with the same GPU of every other node (DGX H100 / B200: eight single-port 400 Gb/s
ConnectX-7, one per GPU; NVIDIA DGX SuperPOD reference architecture, "rail-optimized" compute fabric,
https://docs.nvidia.com/dgx-superpod/reference-architecture-scalable-infrastructure-h100/latest/network-fabrics.html):

    all-reduce of S bytes = intra-node reduce-scatter (S over g GPUs, NVLink)
                          + inter-node all-reduce of S / g bytes among N nodes per rail, g rails at once
                          + intra-node all-gather (S over g GPUs, NVLink)
    t = t_intra(all_reduce, S, g) + latency + 2 (N - 1) / N x (S / g) / (nic_bandwidth x fraction)

(the two intra-node stages are the intra-node all-reduce's reduce-scatter and all-gather halves, timed
together by the intra-node model; the same split holds for an all-gather and a reduce-scatter, with the
(N - 1) / N factor). The node's g NICs carry the inter-node traffic together, so the network stage sees g x
one GPU's NIC bandwidth; a flat ring over all N g GPUs at one NIC's rate (what the roofline's ring assumed)
is g x 2 (N g - 1) / (N g) / (2 (N - 1) / N) times slower in that stage (15 x for N = 2, g = 8). NCCL's
multi-node algorithms reach this split (its tree and NVLS-tree algorithms reduce inside the node before the
network, https://github.com/NVIDIA/nccl/blob/master/src/graph/tuning.cc); the engines' custom all-reduce
is for GPUs of one node only (vLLM: "Custom allreduce is disabled because this process group spans across
nodes", ``CustomAllreduce.__init__`` in vLLM's ``custom_all_reduce.py``), so both intra-node stages run on
NCCL's parameters. Assumptions: the stages run one after another (no pipelining of chunks across stages,
an upper bound on a pipelined implementation by at most 2 x); the network's per-GPU rate is the datasheet's
``inter_node_bandwidth_gb_per_s`` (each GPU's own NIC, or its share of the node's NICs) x the profile's
``interconnect_fraction``; one fixed ``INTER_NODE_LATENCY_S`` per call (read off public two-node nccl-tests
tables less this module's intra-node stage; see the constant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]

OPS: Final = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
"""Collectives by the names NCCL and the public tables use."""

HIERARCHICAL_OPS: Final = ("all_reduce", "all_gather", "reduce_scatter")
"""Collectives that split into an intra-node and a per-rail inter-node stage (:func:`multi_node_s`)."""

INTER_NODE_LATENCY_S: Final = 12e-6
"""Fixed time of the inter-node stage of a collective [s], from public two-node measurements: a small
all-reduce (16 B - 1 KiB, where the per-rail bandwidth term is nil) among 2 x 8 GPUs on InfiniBand,
nccl-tests' ``all_reduce_perf`` (NCCL's own algorithm choice), less this module's intra-node stage for the
same size on the same device (:func:`multi_node_s` is ``t_intra + latency + bandwidth term``):

- 2 x 8 H100 (Nebius InfiniBand cluster): 29.4-31.4 us (one 34.5 us outlier) against the 17.2 us intra-node
  stage: 12.2-14.2 us, median 13.3 (out-of-place) and 12.6 (in-place); dstack's Nebius example,
  https://github.com/dstackai/dstack/blob/107fefef52821c544abe1755d9379fe9ed54a96c/examples/clusters/nebius/README.md
- 2 x 8 B200 (Lambda 1-Click Cluster, NCCL 2.26.2 over its IB transport): 35.5-38.0 us (two outliers, 45.3
  and 51.1 us) against 26.6 us: 8.9-11.3 us, median 10.7 and 10.2; dstack's Lambda example,
  https://github.com/dstackai/dstack/blob/35a4914417bcd76b57a60e39ddcbc74530fd62a5/examples/clusters/lambda/README.md

12 us is the median of the 28 differences (12.4), one figure for both devices as the code has one. NCCL's own
tuning model puts the same stage at 10 us: its tree latency for 2 nodes adds 2 log2(nodes) network steps of
``hwLat[NCCL_HW_NET][NCCL_ALGO_TREE][NCCL_PROTO_LL]`` = 5.0 us to the intra-node chain (``ncclTopoTuneModel``,
src/graph/tuning.cc, https://github.com/NVIDIA/nccl/blob/b6475625fbcaa2c3c0e50eed2fa1255d7514d4a2/src/graph/tuning.cc;
25.2 us for the whole 16-rank call), within the measured spread. One figure per call, not grown with the node
count: the public rows span at most two nodes. The roofline keeps its own ``collective_latency_s``."""


MIB: Final = 2**20


def compute_capability(hardware: HardwareProfile) -> str:
    """The device's CUDA compute capability (``"9.0"``), which the engines key their all-reduce dispatch on:
    the profile's ``datasheet.cuda_compute_capability`` (NVIDIA's table, https://developer.nvidia.com/cuda-gpus),
    so a renamed copy of a profile keeps it. ``""`` where the profile states none (non-NVIDIA devices, or a
    user's profile without it): the engines' dispatch for other GPUs (no symmetric-memory all-reduce, the
    custom kernel below its 8 MiB buffer)."""
    entry = hardware.datasheet.cuda_compute_capability
    return "" if entry is None else entry.value


VLLM_SYMM_MEM_MAX_BYTES: Final[dict[str, dict[int, int]]] = {
    "9.0": {2: 64 * MIB, 4: 32 * MIB, 6: 64 * MIB, 8: 64 * MIB},
    "10.0": {2: 8 * MIB, 4: 32 * MIB, 6: 128 * MIB, 8: 128 * MIB},
    "10.3": {2: 4 * MIB, 4: 32 * MIB, 6: 32 * MIB, 8: 64 * MIB},
}
"""vLLM's largest all-reduce it runs itself, by compute capability and GPU count [bytes]: up to this size
(inclusive) its custom all-reduce or its symmetric-memory all-reduce, beyond it NCCL (``pynccl``)
(``SYMM_MEM_ALL_REDUCE_MAX_SIZES`` in vLLM's ``all_reduce_utils.py``,
https://github.com/vllm-project/vllm/blob/main/vllm/distributed/device_communicators/all_reduce_utils.py;
``SymmMemCommunicator.should_use_symm_mem``: ``inp_size <= self.max_size``; ``CudaCommunicator.all_reduce``
tries the custom all-reduce, then symmetric memory, then ``pynccl``)."""

VLLM_CUSTOM_KERNEL_MAX_BYTES: Final[dict[str, dict[int, int]]] = {
    "9.0": {2: 64 * MIB, 4: 32 * MIB, 6: MIB // 2, 8: MIB // 4},
    "10.0": {2: 2 * MIB, 4: 2 * MIB, 6: 1 * MIB, 8: 1 * MIB},
    "10.3": {2: 4 * MIB, 4: 4 * MIB, 6: 8 * MIB, 8: 4 * MIB},
}
"""vLLM's custom all-reduce kernel's size limit where symmetric memory follows it, by compute capability and
GPU count (exclusive; capped at the 8 MiB buffer, :data:`VLLM_CUSTOM_MAX_BYTES`) [bytes]
(``CUSTOM_ALL_REDUCE_MAX_SIZES`` in ``all_reduce_utils.py``; ``CustomAllreduce.__init__``:
``max_size = min(CUSTOM_ALL_REDUCE_MAX_SIZES[capability][world_size], max_size)``)."""

VLLM_ONE_SHOT_BELOW_BYTES: Final[tuple[tuple[int, int], ...]] = ((4, 512 * 1024), (8, 256 * 1024))
"""vLLM's custom kernel runs one-shot (each GPU reads every peer's whole buffer) on 2 GPUs at every size,
and on up to 4 / 8 fully connected GPUs below 512 / 256 KiB; two-shot (reduce-scatter then all-gather) above
(``AllReduce`` dispatch in ``csrc/custom_all_reduce.cuh``,
https://github.com/vllm-project/vllm/blob/main/csrc/custom_all_reduce.cuh)."""

VLLM_MULTIMEM_GPUS: Final[dict[str, tuple[int, ...]]] = {"9.0": (4, 6, 8), "10.0": (6, 8), "10.3": (6, 8)}
"""GPU counts on which vLLM's symmetric-memory all-reduce is torch's ``multimem_all_reduce_`` (NVLink SHARP),
by compute capability; two-shot (``two_shot_all_reduce_``) on the others (``SymmMemCommunicator
._WORLD_SIZES_MULTIMEM`` in vLLM's ``symm_mem.py``,
https://github.com/vllm-project/vllm/blob/main/vllm/distributed/device_communicators/symm_mem.py)."""

VLLM_CUSTOM_MAX_BYTES: Final = 8 * MIB
"""vLLM's custom all-reduce buffer where symmetric memory does not apply (other compute capabilities, e.g.
A100): all-reduces of at least this size run on NCCL (``CustomAllreduce(max_size=8192 * 1024)`` and
``should_custom_ar``: ``inp_size < self.max_size``, vLLM's ``custom_all_reduce.py``,
https://github.com/vllm-project/vllm/blob/main/vllm/distributed/device_communicators/custom_all_reduce.py)."""

SGLANG_CUSTOM_MAX_BYTES: Final = 8 * MIB
"""SGLang's custom all-reduce buffer: all-reduces of at least this size leave its custom kernel
(``CustomAllreduce._MAX_CAR_SIZE = 8192 * 1024`` on CUDA and ``should_custom_ar``: ``inp_size <
self.max_size`` with NVLink among all the GPUs or two of them; sgl-project/sglang at 263bc85,
https://github.com/sgl-project/sglang/blob/263bc85d64baa38d82ec20f58a61f2982c78075d/python/sglang/srt/distributed/device_communicators/custom_all_reduce.py
). ``GroupCoordinator.all_reduce`` (``parallel_state.py``) then takes
NCCL (``pynccl`` under CUDA graphs, ``torch.distributed`` in an eager prompt pass) unless the launch sets
``--enable-symm-mem`` (NCCL on symmetric buffers) or ``--enable-torch-symm-mem``, both off by default:
SGLang has no symmetric-memory tier of its own between its custom kernel and NCCL, where vLLM has one
(:data:`VLLM_SYMM_MEM_MAX_BYTES`)."""

SGLANG_HIP_CUSTOM_MAX_BYTES: Final = 16 * MIB
"""SGLang's custom all-reduce buffer on ROCm (AMD GPUs over xGMI): ``_MAX_CAR_SIZE = 2 * 8192 * 1024`` under
``_is_hip`` ("crossover is at 16MB buffer size for ROCm"), with the same ``inp_size < self.max_size`` rule
where all GPUs are xGMI-connected (same file and commit as :data:`SGLANG_CUSTOM_MAX_BYTES`). That is SGLang's
own kernel, which runs with ``SGLANG_USE_AITER_AR=0``; by default SGLang on ROCm dispatches to aiter's custom
all-reduce, whose default cutoff is larger (64 MiB, ``_DEFAULT_CAR_MAX_SIZE`` in ROCm/aiter's
``custom_all_reduce.py``, version not pinned here). No public ROCm row checks either."""

VLLM_FUSED_NORM_MAX_BYTES: Final[dict[str, dict[int, float]]] = {
    "9.0": {2: 64 * MIB, 4: 2 * MIB, 8: MIB / 2},
    "10.0": {2: 64 * MIB, 4: 32 * MIB, 8: MIB},
    "10.3": {2: 64 * MIB, 4: 64 * MIB, 8: 4 * MIB},
}
"""The largest all-reduce input vLLM's ``fuse_allreduce_rms`` pass hands to FlashInfer's fused all-reduce +
RMSNorm, by compute capability and GPU count (inclusive) [bytes]; larger ones keep vLLM's own all-reduce
and norm (``FI_ALLREDUCE_FUSION_MAX_SIZE_MB`` in vLLM's ``allreduce_rms_fusion.py``,
https://github.com/vllm-project/vllm/blob/main/vllm/compilation/passes/fusion/allreduce_rms_fusion.py).
FlashInfer's kernel is adapted from TensorRT-LLM's ``allReduceFusionKernels.cu``
(``include/flashinfer/comm/trtllm_allreduce_fusion.cuh``, https://github.com/flashinfer-ai/flashinfer), the
one-shot / two-shot kernels TensorRT-LLM's own all-reduce runs, so below this size the call is timed with
TensorRT-LLM's all-reduce (:func:`vllm_fused_norm_max_bytes`)."""


def vllm_fused_norm_max_bytes(hardware: HardwareProfile, num_gpus: int) -> float:
    """:data:`VLLM_FUSED_NORM_MAX_BYTES` of the device's compute capability and ``num_gpus`` [bytes]; 0
    where vLLM lists none (the pass then leaves the all-reduce as it is)."""
    return float(VLLM_FUSED_NORM_MAX_BYTES.get(compute_capability(hardware), {}).get(num_gpus, 0.0))


TRTLLM_WORKSPACE_BYTES: Final[tuple[int, int]] = (16_000_000, 8_000_000)
"""TensorRT-LLM's custom all-reduce workspace per rank for 2 GPUs and for more [bytes]; larger messages run
on NCCL (``getMaxRequiredWorkspaceSize`` in ``cpp/tensorrt_llm/common/customAllReduceUtils.h``,
https://github.com/NVIDIA/TensorRT-LLM/blob/main/cpp/tensorrt_llm/common/customAllReduceUtils.h)."""

NCCL_P2P_LL_THRESHOLD_BYTES: Final = 16 * 1024
"""NCCL's ``NCCL_P2P_LL_THRESHOLD`` default [bytes]: the LL protocol's payload per channel for one
point-to-point send or receive (``NCCL_PARAM(P2pLLThreshold, "P2P_LL_THRESHOLD", 16384)`` in
``src/enqueue.cc``, https://github.com/NVIDIA/nccl/blob/master/src/enqueue.cc; the same default in every
release read, 2.1x to 2.29)."""

NCCL_P2P_PER_PART_RELEASE: Final = (2, 29)
"""First NCCL release line whose point-to-point protocol choice compares a peer's bytes with the threshold
times the channels that message is split over, not times the most channels any peer may use
(:func:`p2p_ll_max_bytes`). In ``addP2pToPlan`` (``src/enqueue.cc``), releases up to the 2.28 line (the ones
carrying the copy-engine collectives, ``ce_coll.h``, which 2.28 introduced) set ``thresholdLL =
nChannelsMax * ncclParamP2pLLThreshold()`` before splitting; the 2.29 line (the one whose
``scheduleP2pTasksToPlan`` bumps ``p2pEpoch`` at the top of its loop, NCCL 2.29.2's form as ROCm's RCCL
regression test for the 2.29.7 fix describes it, ``test_sparse_send_recv.cpp``) first sets ``nChannels[dir] =
min(nChannelsMin, divUp(bytes, p2pChunkSize / 8))`` and then keeps LL while ``bytes <= nChannels[dir] *
ncclParamP2pLLThreshold()`` ("Select protocol (LL vs SIMPLE) used based on payload per channel")."""

NCCL_P2P_CHANNELS_PER_PEER: Final[dict[str, int]] = {"nvlink": 32, "pcie": 2}
"""``comm->p2pnChannelsPerPeer`` (``nChannelsMax`` of the older rule) by the kind of link between the node's
GPUs [-]: ``pow2Up(min(p2pnChannels, per-peer channels))`` with ``2 x max(1, path bandwidth / one NVLink's
bandwidth)`` channels to an NVLink peer and 2 to any other local peer (``ncclTopoGetNchannels`` and
``ncclTopoComputeP2pChannels``, ``src/graph/paths.cc``, https://github.com/NVIDIA/nccl/blob/master/src/graph/
paths.cc). An A100 SXM has 12 NVLinks to its NVSwitches (24 channels; H100 / B200: 18, 36), and
``p2pnChannels`` is its collective channel count rounded up to a power of two (24 on an 8-GPU A100 ring
graph, so 32): 32."""


def p2p_ll_max_bytes(release: str | None, link: str = "nvlink") -> float:
    """The largest message per peer that NCCL's point-to-point path (all-to-all, send / receive) sends with
    its LL protocol in release ``release`` (``"2.29.2"``) among GPUs meeting over ``link``; Simple above
    [bytes]. ``None``: the newest rule.

    From the 2.29 line (:data:`NCCL_P2P_PER_PART_RELEASE`) the threshold counts the channels the message is
    split over, ``min(nChannelsMin, ceil(bytes / (p2pChunkSize / 8)))``: one channel up to 64 KiB per peer on
    NVLink (512 KiB chunks) or 16 KiB on PCIe (128 KiB), where LL's 16 KiB per channel ends, and every
    larger split puts more than 16 KiB on each channel, so LL runs up to :data:`NCCL_P2P_LL_THRESHOLD_BYTES`
    per peer. Before, it was the threshold times :data:`NCCL_P2P_CHANNELS_PER_PEER` whatever the split: 512
    KiB per peer on an NVSwitch node.
    """
    if release is None:
        return float(NCCL_P2P_LL_THRESHOLD_BYTES)
    parts = str(release).split(".")
    try:
        line = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        raise CostmodelError(f"NCCL release {release!r} is not of the form MAJOR.MINOR[.PATCH]") from None
    if link not in NCCL_P2P_CHANNELS_PER_PEER:
        raise CostmodelError(
            f"link {link!r} is not known: use one of {', '.join(NCCL_P2P_CHANNELS_PER_PEER)}"
        )
    if line >= NCCL_P2P_PER_PART_RELEASE:
        return float(NCCL_P2P_LL_THRESHOLD_BYTES)
    return float(NCCL_P2P_CHANNELS_PER_PEER[link] * NCCL_P2P_LL_THRESHOLD_BYTES)


SWITCH_SHARPNESS: Final = 4.0
"""q of the smooth minimum between the two algorithms: within 19 % of the faster path where both are equal,
within 1 % once one is 2.2 x faster."""

LL_SWITCH_SHARPNESS: Final = 8.0
"""p of NCCL's LL -> Simple switch on PCIe beyond two GPUs: the LL share of a message of size S is
1 / (1 + (S / ll_max_bytes) ^ p), under 0.4 % from twice the switch size on (one power-of-two step of the
tables); smooth so that a least-squares fit can move the switch."""

NCCL_LL_MAX_BYTES: Final = 1 * MIB
"""Default switch size of NCCL's LL protocol on PCIe beyond two GPUs (``Params.ll_max_bytes``) [bytes]: the
order of NCCL's LL crossover for an 8-rank ring (its LL bandwidth is capped near 0.5 of Simple's, its
latency a few microseconds lower per step; ``llMaxBws`` and ``baseLat`` / ``hwLat`` in tuning.cc). An
assumption the fit replaces."""

NCCL_PCIE_FRACTION: Final = 0.75
"""Default achieved fraction of a PCIe link's per-direction rate (``Params.large_bandwidth_fraction`` and the
shared host path's ``host_bandwidth_ratio``, PCIe devices only): NCCL's own topology model, which prices a
PCIe link at ``width x speed / 80`` GB/s with the speed in 100 Mbit/s per lane (``kvDictPciGen``: 120 for
16 GT/s, 240 for 32 GT/s; ``ncclTopoAddPci`` in src/graph/topo.cc, https://github.com/NVIDIA/nccl/blob/
master/src/graph/topo.cc): 24 GB/s for a Gen4 x16 link of 32 GB/s, 48 for a Gen5 x16 link of 64, 0.75 of
the link for every generation, and the rate its ring search and tuner plan PCIe rings with. An assumption
the fit replaces; NVLink devices take their published nccl-tests bus bandwidth where the profile states
one, else the profile's ``interconnect_fraction`` (:func:`published_link_fraction`)."""

EAGER_HOST_FLOOR_S: Final = 20e-6
"""Default host time per eager-mode call (Python dispatch of a custom op, its launch and checks): tens of
microseconds, as PyTorch eager-mode overheads are (https://pytorch.org/blog/accelerating-pytorch-with-cuda-graphs/:
CUDA graphs remove per-kernel CPU launch overheads). CUDA-graph replays pay none. An assumption the fit
replaces."""


NCCL_RING_LATENCY_US: Final[dict[str, tuple[float, float]]] = {"LL": (6.6, 0.6), "Simple": (8.4, 3.4)}
"""NCCL's tuning model of its ring on NVLink, by protocol: (``baseLat``, ``hwLat`` per ring step) [µs]. A ring
collective's latency is ``baseLat[RING][protocol] + nsteps x hwLat[NVLINK][RING][protocol]``
(``ncclTopoTuneModel``, src/graph/tuning.cc at b6475625,
https://github.com/NVIDIA/nccl/blob/b6475625fbcaa2c3c0e50eed2fa1255d7514d4a2/src/graph/tuning.cc: ring
``baseLat`` LL 6.6, Simple 8.4; NVLink ring ``hwLat`` LL 0.6, Simple 3.4; on PCI 1.0 and 5.7). Read by
:func:`nccl_simple_extra_latency_s`."""

NCCL_NODE_RING_GPUS: Final = 8
"""GPUs on the ring :func:`nccl_simple_extra_latency_s` prices: one HGX / DGX baseboard's eight NVLink GPUs,
the largest ring of one node that the tables and the engines' tensor parallelism use."""


def nccl_simple_extra_latency_s(op: str, num_gpus: int = NCCL_NODE_RING_GPUS) -> float | None:
    """NCCL's Simple ring's fixed time beyond its LL ring's on NVLink [s], from its own tuning model
    (:data:`NCCL_RING_LATENCY_US`) for a ring of ``num_gpus`` (the node's :data:`NCCL_NODE_RING_GPUS` unless
    given): ``(baseLat_Simple - baseLat_LL) + steps(op, n) x (hwLat_Simple - hwLat_LL)`` = 1.8 + 14 x 2.8
    = 41.0 µs for an 8-GPU all-reduce, 1.8 + 7 x 2.8 = 21.4 µs for an all-gather or reduce-scatter,
    1.8 + 2 x 2.8 = 7.4 µs for a 2-GPU all-reduce. The parameters hold one value per (device, key) for
    every GPU count, so the default prices the 8-GPU ring: an unfitted key overstates a 2-GPU ring's
    large-message fixed time by 33.6 µs (4-GPU: 22.4 µs); a device with its own tables fits the value that
    serves its rows. The default
    ``large_extra_latency_s`` of NCCL's ring keys on NVLink (:func:`default_params`), which a device without
    its own fit (or one whose partner meets over another kind of link) takes: the model's large path is
    NCCL's Simple protocol and its small path the LL one, both over the same ring steps at
    ``hop_latency_s`` each, so what Simple adds is this. ``None`` for all-to-all, whose point-to-point sends
    NCCL's ring model does not price, and for an op this module does not know."""
    if op not in ("all_reduce", "all_gather", "reduce_scatter"):
        return None
    if num_gpus < 2:
        raise CostmodelError("collective num_gpus must be >= 2 (one GPU needs no collective)")
    (base_ll, hw_ll), (base_simple, hw_simple) = NCCL_RING_LATENCY_US["LL"], NCCL_RING_LATENCY_US["Simple"]
    steps = (2.0 if op == "all_reduce" else 1.0) * (num_gpus - 1)
    return ((base_simple - base_ll) + steps * (hw_simple - hw_ll)) * 1e-6


@dataclass(frozen=True)
class Params:
    """Named parameters of the collective time model for one (device, implementation, op)."""

    small_latency_s: float
    """Fixed time of the latency-optimal algorithm (launch, flag handshake) [s]."""
    large_extra_latency_s: float
    """Fixed time of the bandwidth-optimal algorithm beyond the latency-optimal one's [s] (>= 0, so the
    small-message path is always the one with the lower latency)."""
    hop_latency_s: float
    """Time per ring step / per peer (a flag round trip over the link) [s]."""
    small_bandwidth_ratio: float
    """Rate of the latency-optimal algorithm over the bandwidth-optimal one's on the same links [-]:
    about 0.5 for NCCL's LL protocol (half of every 8-byte store is a flag), about 1 for a one-shot
    custom all-reduce (plain loads over the same links as its two-shot path)."""
    large_bandwidth_fraction: float
    """Achieved fraction of link bandwidth by the bandwidth-optimal algorithm (bus bandwidth) [-]."""
    contention_exponent: float
    """Scaling of the per-GPU rate with the GPU count on switched links: divided by (n - 1) ^ this [-];
    slightly negative where more GPUs keep more links and channels busy (NCCL's bus bandwidth on an
    NVSwitch node grows from 2 to 8 GPUs: H100 all-reduce of 2^28 half elements, 318 / 350 / 445 GB/s on
    2 / 4 / 8 GPUs). Not used on PCIe, where ``host_bandwidth_ratio`` is the contention."""
    host_bandwidth_ratio: float
    """PCIe only: bandwidth of the host path that NCCL's traffic among more than two GPUs shares, over the
    datasheet link bandwidth [-] (each of ``n`` GPUs gets this x link / n)."""
    host_floor_s: float
    """Host-side time per eager-mode call that the GPU work hides behind (Python and launch work, a buffer
    registration check); an eager call takes at least this long, a CUDA-graph replay pays none [s]."""
    link_bandwidth_bytes_per_s: float
    """Datasheet per-direction link bandwidth between GPUs of a node [bytes/s] (not fitted)."""
    one_shot: bool
    """True for a custom all-reduce whose small-message path is one-shot (each GPU reads all peers'
    buffers); False for NCCL, whose small-message path is the ring with the LL protocol (not fitted)."""
    pcie: bool = False
    """The GPUs meet over PCIe only (``datasheet.intra_node_link == "pcie"``): no custom all-reduce beyond two
    GPUs, and a shared host path beyond two (see the module docstring; not fitted)."""
    symm_latency_s: float = 1e-5
    """vLLM only: fixed time of its torch symmetric-memory multimem all-reduce (NVLink SHARP: the switch
    reduces), the path between its custom kernel's and NCCL's sizes on the GPU counts that use it
    (:func:`vllm_paths`) [s]."""
    symm_bandwidth_fraction: float = 0.5
    """vLLM only: achieved fraction of link bandwidth of the multimem all-reduce (ring traffic; may exceed 1,
    the reduction happens in the switch) [-]."""
    vllm_paths: bool = False
    """The key is vLLM's (``vLLM_custom...``): its paths switch at vLLM's published sizes (:func:`vllm_paths`)
    instead of the faster of the two (not fitted)."""
    ll_max_bytes: float = 0.0
    """PCIe only: the message size up to which NCCL's ring beyond two GPUs runs its LL protocol and above
    which it runs Simple [bytes]; 0: the faster of the two. NCCL's tuner picks the protocol from its own
    latency / bandwidth tables (``ncclTopoGetAlgoTime``, https://github.com/NVIDIA/nccl/blob/master/src/graph/
    tuning.cc), not from the time a protocol achieves, so on a host path where LL streams faster than Simple
    it still switches at its tables' crossover (:data:`LL_SWITCH_SHARPNESS`)."""


BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "small_latency_s": (5e-7, 2e-4),
    "large_extra_latency_s": (0.0, 5e-5),
    "hop_latency_s": (0.0, 5e-5),
    "small_bandwidth_ratio": (0.05, 1.5),
    "large_bandwidth_fraction": (0.005, 1.5),
    "contention_exponent": (-1.0, 3.0),  # negative: see the field
    "host_bandwidth_ratio": (0.01, 4.0),
    "host_floor_s": (0.0, 2e-4),
    "symm_latency_s": (5e-7, 2e-4),
    "symm_bandwidth_fraction": (0.005, 1.5),
    "ll_max_bytes": (16 * 1024, 256 * MIB),
}
"""Bandwidth fractions may exceed 1: NVLS reduces in the switch, so an all-reduce's bus bandwidth can
exceed the per-direction link rate (NCCL 2.17+, NVLink SHARP)."""

LINK_PARAMS: Final = (
    "hop_latency_s",
    "large_bandwidth_fraction",
    "small_bandwidth_ratio",
    "contention_exponent",
    "host_bandwidth_ratio",
    "symm_latency_s",
    "symm_bandwidth_fraction",
    "ll_max_bytes",
)
"""Fitted parameters that describe the link between a node's GPUs rather than the collective's software: the
time per ring step, the achieved fractions of the link's bandwidth, the switch's contention and symmetric
memory (NVLink / NVSwitch only), the shared host path and NCCL's LL -> Simple switch size there (PCIe only;
an NVLink key stores the 0 that turns the switch off, which a PCIe target must not take), and the
small-message path's rate, a
ratio to ``large_bandwidth_fraction`` on the same link (an A100's one-shot custom all-reduce reads over
NVLink at 1.48 x its ring's fraction; applied to a PCIe link's own fraction it put a two-GPU L40S one-shot at
1.2 x the link's rate; a target keeps its default, NCCL LL's half or a one-shot's 1). NCCL's own tuning
model keys its per-step latencies by the kind of link (NVLink, PCI, network; ``hwLat`` in
https://github.com/NVIDIA/nccl/blob/master/src/graph/tuning.cc) and its bandwidths by the path type. A device
whose GPUs meet over another kind of link (``datasheet.intra_node_link``) than the device it takes its
parameters from keeps its own defaults for these (:func:`costmodel.calibrate.transferable`); the fixed
software times (launch, flag handshake, the host's eager-mode floor) carry over."""

TIED_PARAMS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "nccl:reduce_scatter": ("nccl:all_gather", ("contention_exponent",)),
}
"""Parameters a key's fit takes from another key of the same device, fitted first, and keeps
(:func:`costmodel.calibrate.calibrate_measurements`): ``{key: (source key, parameter names)}``.

NCCL's reduce-scatter is its all-gather run backwards: the same algorithms (ring, PAT, NVLS, CollNet
direct), the same ``nRanks - 1`` steps and the same per-channel bus bandwidth from the same ring graph in its
tuning model (``ncclTopoTuneModel``, src/graph/tuning.cc, https://github.com/NVIDIA/nccl/blob/master/src/graph/
tuning.cc: ``nsteps`` and the algorithm filter treat ``ncclFuncReduceScatter`` and ``ncclFuncAllGather``
alike). So the growth of the bus bandwidth with the GPU count (``contention_exponent``: the switch and
channel count, not the reduction) is close for the two, though not equal. The public tables show it at
2^28 half elements, bus bandwidth on 2 / 4 / 8 GPUs: B200 all-gather 438 / 566 / 617 GB/s, reduce-scatter
388 / 527 / 598; H100 258 / 318 / 336 and 241 / 305 / 332; A100 150 / 192 / 205 and 163 / 198 / 207: a
growth from 2 to 8 GPUs of 1.41 against 1.54 (B200), 1.30 against 1.38 (H100), 1.37 against 1.27 (A100),
within about 10 % of each other. The tie is for identifiability: the rule-chosen calibration rows of the
B200 and H100 reduce-scatter hold no message above 8 MB on 4 or 8 GPUs, so a fit of its own leaves that
growth unidentified (it fitted 0 and over-predicted 4 and 8 GPUs' large messages by 20-40 %); the
all-gather's rows do identify it, and the residual difference (up to the 10 % above at 8 GPUs) is smaller
than the miss the untied fit left. The reduction's own cost stays in the reduce-scatter's
``large_bandwidth_fraction`` and latencies."""

LATENCY_PARAMS: Final = (
    "small_latency_s",
    "large_extra_latency_s",
    "hop_latency_s",
    "symm_latency_s",
)
"""Fitted fixed times that are round trips among the node's GPUs (flag writes and polls over the link and its
switch: the small-message path's handshake, the bandwidth path's extra set-up, each ring step, the multimem
path's), not host time (``host_floor_s``). A transferred device takes them in proportion to its published
small-message all-reduce latency over the source's (``datasheet.intra_node_latency_us``,
:func:`costmodel.calibrate.carried_latency_scale`). With the same NCCL 2.29.2, vLLM 0.24.0 and TensorRT-LLM
1.3.0rc20, the B200 tables' fitted ``small_latency_s`` is 1.6-1.8 x the H100's for all three, while the
median fitted ``launch_s`` of GEMM, context attention, MLA and MoE keys both fitted differs by 3 % or less:
the difference is the link's round trip, not the GPU's launch."""


def link_bandwidth_bytes_per_s(hardware: HardwareProfile) -> float:
    """Per-direction intra-node link bandwidth from the datasheet [bytes/s]; a clear error if absent."""
    return _datasheet_bytes_per_s(hardware, "intra_node_bandwidth_gb_per_s", "collectives")


def _datasheet_bytes_per_s(hardware: HardwareProfile, field: str, timing: str) -> float:
    """The datasheet's ``field`` [GB/s] in bytes/s; a clear error naming it and what needs it if absent."""
    link = getattr(hardware.datasheet, field)
    if link is None:
        raise CostmodelError(
            f"hardware {hardware.name!r} has no datasheet.{field}: add it to the profile to time {timing}"
        )
    return float(link.value) * 1e9


def published_link_fraction(hardware: HardwareProfile) -> float:
    """Default achieved fraction of the link's per-direction rate by a large ring collective [-].

    The datasheet's published all-reduce bus bandwidth over its link bandwidth
    (``datasheet.intra_node_allreduce_busbw_gb_per_s``, a measurement of nccl-tests at its largest messages,
    whose bus bandwidth is the per-GPU link traffic a ring moves: the same quantity as
    ``Params.large_bandwidth_fraction`` x link), else the profile's assumed
    ``efficiency.interconnect_fraction``. A100 80GB: 231.6 GB/s on 8 GPUs (Azure ND A100 v4) of 300, 0.77,
    where the profile assumes 0.8; NCCL's own tuning model caps an sm80 ring at 235 GB/s of bus bandwidth
    (``ncclTopoTuneModel`` in src/graph/tuning.cc, https://github.com/NVIDIA/nccl, the 2.1x releases:
    ``if (compCapIndex == AMPERE_COMPCAP_IDX) busBw = std::min(busBw, 235.0f)``; not at master b6475625).
    """
    busbw = hardware.datasheet.intra_node_allreduce_busbw_gb_per_s
    if busbw is None:
        return hardware.efficiency.interconnect_fraction
    return float(busbw.value) * 1e9 / link_bandwidth_bytes_per_s(hardware)


def default_params(hardware: HardwareProfile, dtype: str = "nccl") -> Params:
    """Datasheet-only parameters for a key: ``"nccl..."`` is NCCL, anything else a custom all-reduce.

    Defaults: the ring's published achieved share of an NVLink link (:func:`published_link_fraction`: a
    stated nccl-tests bus bandwidth, else the profile's ``interconnect_fraction``), NCCL's own PCIe rate
    (:data:`NCCL_PCIE_FRACTION`) on PCIe, half of it for NCCL's latency-optimal path (LL protocol) and all of
    it for a one-shot all-reduce, 2 x ``kernel_overhead_s`` fixed, 1 µs per hop (per ring step for NCCL),
    NCCL's Simple-over-LL ring latency from its tuning model as the extra fixed time of an NCCL ring key's
    large path on NVLink (:func:`nccl_simple_extra_latency_s`, NVIDIA's NVLink constants, so not on xGMI or
    ICI, whose collective libraries tune their own; 2 x ``kernel_overhead_s`` elsewhere), no
    contention on switched links, a host path of one link's bandwidth x :data:`NCCL_PCIE_FRACTION` on
    PCIe, and ``EAGER_HOST_FLOOR_S`` for the custom all-reduce keys (paid by eager calls only) and keys
    naming eager mode (``vLLM_custom_eager``), none for NCCL.
    """
    eff = hardware.efficiency
    shared = hardware.datasheet.intra_node_link == "pcie"
    link_fraction = NCCL_PCIE_FRACTION if shared else published_link_fraction(hardware)
    simple_extra = None
    # NVIDIA NCCL's NVLink constants: RCCL over xGMI and TPU ICI tune their own (RCCL's tuning.cc differs)
    if dtype.lower().startswith("nccl:") and hardware.datasheet.intra_node_link == "nvlink":
        simple_extra = nccl_simple_extra_latency_s(dtype.split(":")[1])
    return Params(
        small_latency_s=2 * eff.kernel_overhead_s,
        large_extra_latency_s=2 * eff.kernel_overhead_s if simple_extra is None else simple_extra,
        hop_latency_s=1e-6,
        small_bandwidth_ratio=0.5 if dtype.lower().startswith("nccl") else 1.0,
        large_bandwidth_fraction=link_fraction,
        contention_exponent=0.0,
        host_bandwidth_ratio=link_fraction,
        host_floor_s=0.0 if dtype.lower().startswith(("nccl", "trtllm")) else EAGER_HOST_FLOOR_S,
        link_bandwidth_bytes_per_s=link_bandwidth_bytes_per_s(hardware),
        # TensorRT-LLM runs no custom kernel without NVLink (AllreduceOp::ifFallbackToNCCL): NCCL's ring there
        one_shot=not (dtype.lower().startswith("nccl") or (shared and dtype.startswith("TRTLLM"))),
        pcie=shared,
        symm_bandwidth_fraction=eff.interconnect_fraction,
        vllm_paths=dtype.startswith("vLLM") and not shared,
        ll_max_bytes=NCCL_LL_MAX_BYTES if shared else 0.0,
    )


def fixed_for(key: str, hardware: HardwareProfile | None = None) -> tuple[str, ...]:
    """Parameters a fit must not move for ``key`` on ``hardware``: ``ll_max_bytes`` where the GPUs do not meet
    over PCIe only, the one place it applies (a fit would otherwise store its lower bound, 16 KiB, on an
    NVLink key that never reads it)."""
    if hardware is not None and hardware.datasheet.intra_node_link == "pcie":
        return ()
    return ("ll_max_bytes",)


def fixed_for_rows(dtype: str, shapes: dict[str, Any]) -> tuple[str, ...]:
    """Parameters ``costmodel.calibrate.fit_params`` keeps at their start for these rows of key ``dtype``:
    ``small_bandwidth_ratio`` for all-to-all rows none of which sends more than
    :data:`NCCL_P2P_LL_THRESHOLD_BYTES` per peer with LL (the 2.29 line's rule, :func:`p2p_ll_max_bytes`):
    16 KiB over a link of hundreds of GB/s is under 0.1 µs, so the rows cannot tell LL's rate, and a fit
    would leave it wherever the least-squares noise takes it (it went to its bound of 1.5, LL faster than
    Simple, which a flag in every 8 bytes rules out)."""
    ops = np.asarray(shapes.get("op", "all_reduce"), dtype=str)
    if ops.size == 0 or not np.all(ops == "alltoall"):
        return ()
    size, n = np.broadcast_arrays(
        np.asarray(shapes.get("message_bytes", 0.0), dtype=np.float64),
        np.asarray(shapes.get("num_gpus", 2.0), dtype=np.float64),
    )
    per_peer = size / n
    ll = per_peer <= _p2p_ll_max(shapes.get("p2p_ll_max_bytes"), per_peer.shape)
    return () if np.any(per_peer[ll] > NCCL_P2P_LL_THRESHOLD_BYTES) else ("small_bandwidth_ratio",)


def bus_factor(op: npt.ArrayLike, num_gpus: npt.ArrayLike) -> FloatArray:
    """Per-GPU link traffic over the buffer size for the ring algorithm [-] (NCCL's bus-bandwidth factor).

    ``2 (n - 1) / n`` for all-reduce, ``(n - 1) / n`` for all-gather, reduce-scatter and all-to-all.
    """
    n = np.asarray(num_gpus, dtype=np.float64)
    ops = np.broadcast_to(np.asarray(op, dtype=str), n.shape)
    _check_ops(ops)
    return np.asarray(np.where(ops == "all_reduce", 2.0, 1.0) * (n - 1.0) / n, dtype=np.float64)


def _check_ops(ops: npt.NDArray[np.str_]) -> None:
    unknown = sorted(set(np.unique(ops).tolist()) - set(OPS))
    if unknown:
        raise CostmodelError(f"collective op {unknown[0]!r} is not known: use one of {', '.join(OPS)}")


@dataclass(frozen=True)
class CollectiveBreakdown:
    """Both algorithms' times [s]; ``total`` is the faster one."""

    small_s: FloatArray
    large_s: FloatArray
    host_floor_s: FloatArray
    chosen_s: FloatArray | None = None
    """The path the implementation runs at each size where it switches at fixed sizes (vLLM), else None."""

    @property
    def total(self) -> FloatArray:
        if self.chosen_s is not None:
            return np.asarray(np.maximum(self.host_floor_s, self.chosen_s), dtype=np.float64)
        return np.asarray(
            np.maximum(self.host_floor_s, smooth_min(self.small_s, self.large_s)), dtype=np.float64
        )


def smooth_min(a: FloatArray, b: FloatArray) -> FloatArray:
    """The faster of two paths, smoothed (:data:`SWITCH_SHARPNESS`): the tuner's choice is sharp per size,
    but measurements blur the switch (each size is a median over runs; NCCL splits work over channels that
    switch protocol at different sizes), and a smooth switch keeps both paths visible to a least-squares
    fit."""
    faster = np.minimum(a, b)
    ratio = faster / np.maximum(a, b)
    return np.asarray(faster * (1.0 + ratio**SWITCH_SHARPNESS) ** (-1.0 / SWITCH_SHARPNESS), dtype=np.float64)


def breakdown(
    hardware: HardwareProfile,
    params: Params,
    *,
    message_bytes: npt.ArrayLike,
    num_gpus: npt.ArrayLike,
    op: npt.ArrayLike = "all_reduce",
    eager: npt.ArrayLike | None = None,
    p2p_ll_max_bytes: npt.ArrayLike | None = None,
) -> CollectiveBreakdown:
    """The two algorithms' times (same arguments as ``time_s``)."""
    size, n = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(message_bytes, num_gpus))
    if np.any(n < 2):
        raise CostmodelError("collective num_gpus must be >= 2 (one GPU needs no collective)")
    if np.any(size < 0):
        raise CostmodelError("collective message_bytes must be >= 0")
    ops = np.broadcast_to(np.asarray(op, dtype=str), n.shape)
    ring = bus_factor(ops, n)
    is_all_reduce = ops == "all_reduce"
    # vLLM's custom all-reduce runs on PCIe-only GPUs between two of them only; NCCL's ring otherwise
    custom = is_all_reduce & params.one_shot & ((n <= 2.0) | (not params.pcie))
    one_shot = np.where(custom, n - 1.0, ring)
    steps = np.where(is_all_reduce, 2.0, 1.0) * (n - 1.0)
    link = params.link_bandwidth_bytes_per_s
    if params.pcie:  # beyond two GPUs, n GPUs share the host path (module docstring)
        host = params.host_bandwidth_ratio * link / params.large_bandwidth_fraction / n
        rate = np.where(n <= 2.0, link, np.minimum(link, host))
    else:
        rate = link / (n - 1.0) ** params.contention_exponent
    small = (
        params.small_latency_s
        + params.hop_latency_s * np.where(custom, n - 1.0, steps)
        + size * one_shot / (rate * params.large_bandwidth_fraction * params.small_bandwidth_ratio)
    )
    large = (
        params.small_latency_s
        + params.large_extra_latency_s
        + params.hop_latency_s * steps
        + size * ring / (rate * params.large_bandwidth_fraction)
    )
    floor = params.host_floor_s * (np.ones_like(n) if eager is None else np.asarray(eager, dtype=np.float64))
    chosen = None
    if params.vllm_paths:
        one, two, symm = vllm_paths(hardware, message_bytes=size, num_gpus=num_gpus)
        multimem = np.zeros(n.shape, dtype=bool)
        for gpus in VLLM_MULTIMEM_GPUS.get(compute_capability(hardware), ()):
            multimem |= symm & (n == gpus)
        # multimem: the switch reduces (no per-peer contention); the other GPU counts run symmetric memory's
        # two-shot, the custom kernel's two-shot algorithm on peer memory plus a copy in and out of the
        # symmetric buffer (two passes over the message in device memory)
        copies = 2.0 * 2.0 * size / hardware.memory_bandwidth_bytes_per_s
        symm_s = np.where(
            multimem,
            params.symm_latency_s + size * ring / (link * params.symm_bandwidth_fraction),
            large + copies,
        )
        # beyond its symmetric memory vLLM calls NCCL (runs_on_nccl: those sizes take NCCL's key); the
        # faster path stands in where a caller still times them with this key
        beyond = np.minimum(small, large)
        chosen = np.where(
            is_all_reduce,
            np.where(one, small, np.where(two, large, np.where(symm, symm_s, beyond))),
            np.minimum(small, large),
        )
    elif params.pcie:
        small_a, large_a = np.asarray(small, dtype=np.float64), np.asarray(large, dtype=np.float64)
        ring = smooth_min(small_a, large_a)
        if params.ll_max_bytes > 0.0:
            # NCCL's ring beyond two PCIe GPUs: LL up to its tuner's switch size, Simple above (ll_max_bytes)
            ll_share = 1.0 / (1.0 + (size / params.ll_max_bytes) ** LL_SWITCH_SHARPNESS)
            ring = ll_share * small_a + (1.0 - ll_share) * large_a
        # two PCIe GPUs: vLLM's (and SGLang's) one-shot kernel below its 8 MiB buffer, NCCL's ring from it
        # (module docstring); TensorRT-LLM's keys are NCCL's ring at every size there (not one_shot)
        chosen = np.where(custom, np.where(size < VLLM_CUSTOM_MAX_BYTES, small_a, large_a), ring)
    is_alltoall = ops == "alltoall"
    if not params.one_shot and np.any(is_alltoall):
        # NCCL's all-to-all is point-to-point sends: LL up to its release's size per peer, Simple above
        # (p2p_ll_max_bytes), by size as NCCL's planner picks, not by which path is faster
        ll_max = _p2p_ll_max(p2p_ll_max_bytes, n.shape)
        p2p = np.where(size / n <= ll_max, small, large)
        other = smooth_min(np.asarray(small, dtype=np.float64), np.asarray(large, dtype=np.float64))
        chosen = np.where(is_alltoall, p2p, other if chosen is None else chosen)
    return CollectiveBreakdown(
        np.asarray(small, dtype=np.float64),
        np.asarray(large, dtype=np.float64),
        np.asarray(np.broadcast_to(floor, n.shape), dtype=np.float64),
        None if chosen is None else np.asarray(chosen, dtype=np.float64),
    )


def _p2p_ll_max(value: npt.ArrayLike | None, shape: tuple[int, ...]) -> FloatArray:
    """``p2p_ll_max_bytes`` broadcast to the rows' shape, the newest release's rule for ``None``; a clear
    error if negative."""
    if value is None:
        return np.full(shape, p2p_ll_max_bytes(None))
    ll_max = np.broadcast_to(np.asarray(value, dtype=np.float64), shape)
    if np.any(ll_max < 0):
        raise CostmodelError("collective p2p_ll_max_bytes must be >= 0")
    return np.asarray(ll_max, dtype=np.float64)


def time_s(
    hardware: HardwareProfile,
    params: Params,
    *,
    message_bytes: npt.ArrayLike,
    num_gpus: npt.ArrayLike,
    op: npt.ArrayLike = "all_reduce",
    eager: npt.ArrayLike | None = None,
    p2p_ll_max_bytes: npt.ArrayLike | None = None,
) -> FloatArray:
    """Time of one collective [s].

    Parameters
    ----------
    message_bytes : the collective's buffer (nccl-tests' size) [bytes].
    num_gpus : GPUs taking part, all in one node [-].
    op : ``"all_reduce"``, ``"all_gather"``, ``"reduce_scatter"`` or ``"alltoall"``, per row.
    eager : per row, whether the call is made in eager mode (pays ``host_floor_s``) or replayed from a CUDA
        graph (does not); ``None``: every call pays the parameters' floor. The two modes run the same
        kernels, so one set of parameters serves both.
    p2p_ll_max_bytes : per row, NCCL's all-to-all: the largest message per peer (``message_bytes / num_gpus``)
        its release sends with the LL protocol (:func:`p2p_ll_max_bytes`) [bytes]; ``None``: the newest
        release's. Other ops and the engines' own all-reduce ignore it.
    """
    return breakdown(
        hardware,
        params,
        message_bytes=message_bytes,
        num_gpus=num_gpus,
        op=op,
        eager=eager,
        p2p_ll_max_bytes=p2p_ll_max_bytes,
    ).total


def node_split(group: int, span: int, scale_up_domain: int) -> tuple[int, int]:
    """(nodes, GPUs per node) of a collective of ``group`` GPUs spread over ``span`` devices, filled into
    scale-up domains (nodes) of ``scale_up_domain`` devices [-]: ``ceil(span / domain)`` nodes, and the
    group's GPUs evenly over them (the fullest node's count)."""
    if group < 1 or span < 1 or scale_up_domain < 1:
        raise CostmodelError("collective group, span and scale_up_domain must be >= 1")
    nodes = max(1, -(-max(span, group) // scale_up_domain))
    return nodes, max(1, -(-group // nodes))


def inter_node_bandwidth_bytes_per_s(hardware: HardwareProfile) -> float:
    """Per-GPU, per-direction network bandwidth from the datasheet [bytes/s]; a clear error if absent."""
    return _datasheet_bytes_per_s(hardware, "inter_node_bandwidth_gb_per_s", "collectives across nodes")


def multi_node_s(
    hardware: HardwareProfile,
    intra_s: npt.ArrayLike,
    *,
    message_bytes: npt.ArrayLike,
    nodes: int,
    gpus_per_node: int,
    op: str = "all_reduce",
    interconnect_fraction: float,
    latency_s: float = INTER_NODE_LATENCY_S,
) -> FloatArray:
    """Time of one hierarchical collective across ``nodes`` nodes of ``gpus_per_node`` GPUs [s] (module
    docstring): ``intra_s`` (the intra-node stages: the same collective of the whole buffer among the node's
    GPUs, 0 for one GPU per node) + ``latency_s`` + the per-rail stage, ``bus_factor(op, nodes)`` x
    ``message_bytes / gpus_per_node`` over one GPU's network bandwidth x ``interconnect_fraction``.

    Parameters
    ----------
    intra_s : time of the intra-node stages [s].
    message_bytes : the collective's buffer (nccl-tests' size) [bytes].
    nodes, gpus_per_node : the group's layout (:func:`node_split`) [-].
    op : one of :data:`HIERARCHICAL_OPS`.
    interconnect_fraction : achieved fraction of the network bandwidth [-].
    """
    if op not in HIERARCHICAL_OPS:
        raise CostmodelError(f"collective op {op!r} has no hierarchical form: use one of {HIERARCHICAL_OPS}")
    if nodes < 1 or gpus_per_node < 1:
        raise CostmodelError("collective nodes and gpus_per_node must be >= 1")
    size = np.asarray(message_bytes, dtype=np.float64)
    rail = inter_node_bandwidth_bytes_per_s(hardware) * interconnect_fraction
    network = np.where(nodes > 1, latency_s + bus_factor(op, nodes) * size / gpus_per_node / rail, 0.0)
    return np.asarray(np.asarray(intra_s, dtype=np.float64) + network, dtype=np.float64)


def runs_on_nccl(
    hardware: HardwareProfile, key: str, *, message_bytes: npt.ArrayLike, num_gpus: npt.ArrayLike
) -> npt.NDArray[np.bool_]:
    """Whether an engine's all-reduce (parameter ``key``: ``vLLM_custom...`` or ``TRTLLM``) of this size among
    this many GPUs hands over to NCCL, at the engine's published size limits (:data:`VLLM_SYMM_MEM_MAX_BYTES`,
    :data:`VLLM_CUSTOM_MAX_BYTES`, :data:`TRTLLM_WORKSPACE_BYTES`); NCCL's own keys never switch. On devices
    whose GPUs meet over PCIe only, vLLM's custom-all-reduce parameters already are NCCL's ring beyond two
    GPUs and the same PCIe link for two (module docstring), and TensorRT-LLM calls NCCL at every size: its
    custom kernels need NVLink (``AllreduceOp::ifFallbackToNCCL`` returns NCCL unless both P2P and NVLink
    are supported, NVIDIA/TensorRT-LLM ``cpp/tensorrt_llm/thop/allreduceOp.cpp``)."""
    size = np.asarray(message_bytes, dtype=np.float64)
    shape = np.broadcast_shapes(size.shape, np.shape(num_gpus))
    if hardware.datasheet.intra_node_link == "pcie":
        return np.full(shape, key.startswith("TRTLLM"), dtype=bool)
    if not key.startswith(("vLLM", "TRTLLM")):
        return np.zeros(shape, dtype=bool)
    if key.startswith("TRTLLM"):
        two, more = TRTLLM_WORKSPACE_BYTES
        return np.asarray(size > np.where(np.asarray(num_gpus) <= 2, two, more))
    custom_max, _, symm_max = _vllm_limits(hardware, num_gpus)
    return np.asarray((size >= custom_max) & (size > symm_max))


def vllm_paths(
    hardware: HardwareProfile, *, message_bytes: npt.ArrayLike, num_gpus: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which of vLLM's own all-reduce paths runs at each size (one-shot custom kernel, two-shot custom kernel,
    torch symmetric memory), at vLLM's published sizes (:data:`VLLM_ONE_SHOT_BELOW_BYTES`,
    :data:`VLLM_CUSTOM_KERNEL_MAX_BYTES`, :data:`VLLM_SYMM_MEM_MAX_BYTES`); none of the three: NCCL
    (:func:`runs_on_nccl`). Devices without vLLM's symmetric-memory tables: the custom kernel below 8 MiB."""
    size = np.asarray(message_bytes, dtype=np.float64)
    custom_max, one_shot_below, symm_max = _vllm_limits(hardware, num_gpus)
    custom = size < custom_max
    one = custom & (size < one_shot_below)
    symm = ~custom & (size <= symm_max)
    return np.asarray(one), np.asarray(custom & ~one), np.asarray(symm)


def _vllm_limits(hardware: HardwareProfile, num_gpus: npt.ArrayLike) -> tuple[Any, Any, Any]:
    """vLLM's (custom kernel's exclusive limit, one-shot's exclusive limit, symmetric memory's inclusive
    limit; 0: none) [bytes] on ``hardware`` for ``num_gpus``: floats for one GPU count, else arrays."""
    capability = compute_capability(hardware)

    def limits(gpus: float) -> tuple[float, float, float]:
        custom = VLLM_CUSTOM_KERNEL_MAX_BYTES.get(capability, {}).get(int(gpus), VLLM_CUSTOM_MAX_BYTES)
        below = next((float(b) for g, b in VLLM_ONE_SHOT_BELOW_BYTES if gpus <= g), 0.0)
        return (
            float(min(custom, VLLM_CUSTOM_MAX_BYTES)),
            np.inf if gpus <= 2 else below,
            float(VLLM_SYMM_MEM_MAX_BYTES.get(capability, {}).get(int(gpus), 0)),
        )

    if np.ndim(num_gpus) == 0:  # the serving path: one group size per call
        return limits(float(np.asarray(num_gpus)))
    n = np.asarray(num_gpus, dtype=np.float64)
    out = [np.zeros(n.shape) for _ in range(3)]
    for gpus in np.unique(n).tolist():
        for array, value in zip(out, limits(gpus), strict=True):
            array[n == gpus] = value
    return out[0], out[1], out[2]


def switch_bytes(hardware: HardwareProfile, key: str, num_gpus: int) -> list[float]:
    """The message sizes at which an engine's all-reduce (``key``) changes path among ``num_gpus`` GPUs
    [bytes]: vLLM's one-shot / two-shot / symmetric-memory / NCCL switches (:func:`vllm_paths`,
    :func:`runs_on_nccl`), TensorRT-LLM's NCCL hand-over; on PCIe devices vLLM's two-GPU hand-over from its
    custom kernel to NCCL's ring (:data:`VLLM_CUSTOM_MAX_BYTES`; TensorRT-LLM runs NCCL there at every size);
    none for NCCL."""
    if hardware.datasheet.intra_node_link == "pcie":
        return [float(VLLM_CUSTOM_MAX_BYTES)] if num_gpus <= 2 and key.startswith("vLLM") else []
    if key.startswith("TRTLLM"):
        two, more = TRTLLM_WORKSPACE_BYTES
        return [float(two if num_gpus <= 2 else more) + 1.0]
    if not key.startswith("vLLM"):
        return []
    custom_max, one_shot_below, symm_max = _vllm_limits(hardware, num_gpus)
    found = [float(one_shot_below), float(custom_max)] + ([float(symm_max) + 1.0] if symm_max > 0 else [])
    return sorted({v for v in found if np.isfinite(v) and v > 0})
