"""Adapters: how the rows of one kind of public table become calls of one ``costmodel.kernels`` model.

The registry maps each table ``op_name`` to the adapter module that handles it. A row whose ``op_name`` has
no adapter is counted as *not covered* (with the reason) by the evaluation, never silently dropped.

The adapter contract (one module per kernel family in this package):

``KERNEL_MODULE``
    The ``costmodel.kernels`` module that predicts these rows (``Params``, ``BOUNDS``, ``default_params``,
    ``time_s``; see ``costmodel.kernels``).
``OP_NAMES``
    The ``op_name`` values of the tables this adapter handles (a tuple of str).
``params_key(table) -> ndarray[str]``
    Per row: the key the parameters are looked up and fitted by, ``"<dtype>"`` or
    ``"<dtype>:<qualifier>"`` (the qualifier names an engine or kernel class whose parameters differ).
``dtype(table) -> ndarray[str]`` (optional)
    Per row: the format the evaluation reports (``dtype`` of ``summary.json``), for adapters whose key
    does not start with it (attention and MLA keys start with the kernel, collective keys with ``nccl``).
    Without it, the part of the key before ``":"`` is the row's dtype.
``shapes(table) -> dict[str, ndarray]``
    Per row: the keyword arrays of ``KERNEL_MODULE.time_s`` (numpy arrays of the table's length).

``table`` is a pandas DataFrame of rows of one ``op_name`` as read by :mod:`validation.public.reader`
(the file's columns plus ``system``, ``engine``, ``hardware``, ``latency_s``, ``calibration``). Both
functions are vectorised: no Python loop over rows. The evaluation groups rows by (hardware, key) and calls
``time_s`` once per group with ``costmodel.kernels.params_for(hardware, KERNEL_MODULE, key)``; calibration
fits the same groups on their calibration rows.

To add a family: write ``validation/public/families/<family>.py`` and add its module name to
``ADAPTER_MODULES`` below.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

# fmt: off
ADAPTER_MODULES: tuple[str, ...] = (
    "gemm",
    "context_attention",
    "generation_attention",
    "moe",
    "collective",
    "mla",
)
# fmt: on
"""Adapter modules in this package, one line each."""


@cache
def adapters() -> dict[str, ModuleType]:
    """``op_name`` -> adapter module, over every registered adapter."""
    table: dict[str, ModuleType] = {}
    for name in ADAPTER_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for op_name in module.OP_NAMES:
            if op_name in table:
                raise RuntimeError(f"op_name {op_name!r} claimed by {table[op_name].__name__} and {name}")
            table[op_name] = module
    return table


def adapter_for(op_name: str) -> ModuleType | None:
    """The adapter of ``op_name``, or None when no adapter handles it."""
    return adapters().get(op_name)
