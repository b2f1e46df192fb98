"""costmodel: analytical cost and performance model for large language models."""

from costmodel.params import param_count
from costmodel.registry import list_hardware, list_models, load_hardware, load_model
from costmodel.specs import HardwareProfile, ModelProfile

__version__ = "0.1.0"

__all__ = [
    "HardwareProfile",
    "ModelProfile",
    "__version__",
    "list_hardware",
    "list_models",
    "load_hardware",
    "load_model",
    "param_count",
]
