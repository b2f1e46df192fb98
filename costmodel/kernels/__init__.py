"""Kernel time models: how long one family of GPU kernels takes, vectorised over shapes.

``costmodel.ops`` says *what* runs in a forward pass; the modules here say *how long* one kernel of a
family (GEMM, attention, MLA, MoE, collectives) takes on a device. The plain roofline
(``costmodel.roofline``) is the simplest such model; the family models add the physics it misses (wave
quantization over the SMs, the weight-streaming regime at small M, split-K decode attention, routing
imbalance, collective algorithms chosen by size, launch costs), each with a few named, physically
meaningful parameters.

The contract every family module follows (``costmodel.calibrate`` and ``validation/public`` rely on it):

``Params``
    A frozen dataclass of the family's named parameters, units in the names (``*_fraction``,
    ``*_s``, ``*_bytes``). A handful per (device, family, dtype), never a per-shape table.
``BOUNDS``
    ``{field name: (low, high)}`` for the parameters a fit may move; fields not listed stay at their
    default (datasheet) value.
``default_params(hardware, dtype) -> Params``
    From the datasheet alone: what the model predicts for a device nobody has measured.
``time_s(hardware, params, **shapes) -> FloatArray``
    Kernel time [s] for numpy arrays of shapes that broadcast together. Pure: no I/O, no loops over rows.

Calibrated values are stored per device in its hardware profile and found by family and dtype; a fit
records what data it used. Fitting itself lives in ``costmodel.calibrate``.
"""
