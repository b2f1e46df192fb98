"""costmodel: analytical cost and performance model for large language models.

>>> import costmodel
>>> model = costmodel.load_model("llama-3-8b")
>>> costmodel.param_count(model).total
8030261248
"""

from costmodel import capacity, compression, pareto, queueing, scaling, serving, simulate, speculative
from costmodel.dtypes import DTYPES, bytes_per_element, storage_bytes
from costmodel.errors import CostmodelError, UnknownNameError
from costmodel.estimate import Report, SizingReport, TrainingReport, estimate, size, sweep, train
from costmodel.flops import approx_forward_flop, approx_training_flop, forward_flop, training_flop
from costmodel.memory import (
    fit,
    inference_activation_bytes,
    kv_bytes_per_token,
    kv_cache_bytes,
    training_memory,
    weight_bytes,
)
from costmodel.params import param_count
from costmodel.registry import list_hardware, list_models, load_hardware, load_model
from costmodel.specs import Deployment, Efficiency, HardwareProfile, ModelProfile, Workload

__version__ = "0.1.0"

__all__ = [
    "DTYPES",
    "CostmodelError",
    "Deployment",
    "Efficiency",
    "HardwareProfile",
    "ModelProfile",
    "Report",
    "SizingReport",
    "TrainingReport",
    "UnknownNameError",
    "Workload",
    "__version__",
    "approx_forward_flop",
    "approx_training_flop",
    "bytes_per_element",
    "capacity",
    "compression",
    "estimate",
    "fit",
    "forward_flop",
    "inference_activation_bytes",
    "kv_bytes_per_token",
    "kv_cache_bytes",
    "list_hardware",
    "list_models",
    "load_hardware",
    "load_model",
    "param_count",
    "pareto",
    "queueing",
    "scaling",
    "serving",
    "simulate",
    "size",
    "speculative",
    "storage_bytes",
    "sweep",
    "train",
    "training_flop",
    "training_memory",
    "weight_bytes",
]
