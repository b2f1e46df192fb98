"""Loading profiles: the built-in YAML files, a user's own YAML, or a Hugging Face config.json.

Built-in model profiles live in ``costmodel/models/``; hardware profiles live in the repository's
``hardware_profiles/`` folder and are copied into the wheel as ``costmodel/_data/hardware_profiles/``,
so an installed costmodel finds them without a source checkout.

Calibrated kernel parameters are *overlays*: ``hardware_profiles/calibrated/<name>.yaml`` holds only
``name`` and ``kernel_calibration`` (written by ``costmodel calibrate --from DIR``) and is merged into the
built-in profile of that name on load, so the hand-written datasheet files are never rewritten by a fit. An
overlay file given by path is merged into the built-in profile it names.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from costmodel.errors import CostmodelError, UnknownNameError, describe_validation_error
from costmodel.specs import HardwareProfile, ModelProfile

_PACKAGE_ROOT = Path(__file__).resolve().parent
T = TypeVar("T", bound=BaseModel)


def _models_dir() -> Path:
    return Path(str(resources.files("costmodel") / "models"))


def _hardware_dir() -> Path:
    packaged = Path(str(resources.files("costmodel") / "_data" / "hardware_profiles"))
    if packaged.is_dir():  # installed wheel
        return packaged
    return _PACKAGE_ROOT.parent / "hardware_profiles"  # source checkout / editable install


MAX_PROFILE_BYTES = 1_000_000
"""Largest profile file read [bytes]: profiles are a few kB; a bigger file (or a device, a pipe) is refused
before it is read, so a wrong path costs neither time nor memory."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        if not path.is_file():
            raise CostmodelError(f"cannot read {path}: not a regular file (a profile is a small YAML file)")
        with path.open("rb") as f:
            raw = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as e:
        raise CostmodelError(f"cannot read {path}: {e.strerror or e}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise CostmodelError(f"{path} is over {MAX_PROFILE_BYTES:,} bytes: not a profile")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CostmodelError(f"{path} is not UTF-8 text: not a profile") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise CostmodelError(f"{path} nests too deeply: not a profile") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise CostmodelError(f"{path} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    if data is None or data == {}:
        raise CostmodelError(
            f"{path} is empty: not a profile (an interrupted write? write it again, or delete it)"
        )
    if not isinstance(data, dict):
        raise CostmodelError(f"{path} must hold a YAML mapping of field: value, not {type(data).__name__}")
    return data


def _validate(cls: type[T], data: dict[str, Any], what: str) -> T:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise CostmodelError(describe_validation_error(e, what)) from None


def load_model_file(path: Path) -> ModelProfile:
    """A model profile from a YAML file, or from a Hugging Face ``config.json`` (by extension)."""
    if path.suffix == ".json":
        return ModelProfile.from_hf_config(path)
    return _validate(ModelProfile, _read_yaml(path), f"model profile {path}")


OVERLAY_KEYS = frozenset({"name", "kernel_calibration"})


def load_hardware_file(path: Path) -> HardwareProfile:
    """A hardware profile from a YAML file, or a calibration overlay (``name`` + ``kernel_calibration``)
    merged into the built-in profile it names."""
    data = _read_yaml(path)
    if "datasheet" not in data and "kernel_calibration" in data:
        extra = sorted(set(data) - OVERLAY_KEYS)
        if extra or "name" not in data:
            raise CostmodelError(
                f"{path} looks like a calibration overlay (no datasheet) but has "
                + (f"unknown fields {extra}" if extra else "no 'name'")
                + "; an overlay holds only name and kernel_calibration"
            )
        base = _builtin_hardware().get(str(data["name"]))
        if base is None:
            raise UnknownNameError("hardware", str(data["name"]), _builtin_hardware())
        merged = {**_read_yaml(base), "kernel_calibration": data["kernel_calibration"]}
        return _validate(HardwareProfile, merged, f"hardware profile {base} with overlay {path}")
    return _validate(HardwareProfile, data, f"hardware profile {path}")


def calibrated_dir() -> Path:
    """Where the committed calibration overlays of the built-in profiles live."""
    return _hardware_dir() / "calibrated"


@cache
def _builtin_models() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_models_dir().glob("*.yaml"))}


@cache
def _builtin_hardware() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_hardware_dir().glob("*.yaml"))}


def list_models() -> list[str]:
    """Names of the built-in model profiles."""
    return list(_builtin_models())


def list_hardware() -> list[str]:
    """Names of the built-in hardware profiles."""
    return list(_builtin_hardware())


@cache
def _load_builtin_model(name: str) -> ModelProfile:
    return load_model_file(_builtin_models()[name])


@cache
def _load_builtin_hardware(name: str) -> HardwareProfile:
    overlay = calibrated_dir() / f"{name}.yaml"
    if overlay.is_file():
        return load_hardware_file(overlay)
    return load_hardware_file(_builtin_hardware()[name])


def _is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml", ".json")) or "/" in name


def load_model(name: str | ModelProfile) -> ModelProfile:
    """A built-in model by name (``'llama-3-8b'``), or a profile file by path (YAML or HF config.json).

    An unknown name raises :class:`~costmodel.errors.UnknownNameError` suggesting the closest names.
    """
    if isinstance(name, ModelProfile):
        return name
    if name in _builtin_models():
        return _load_builtin_model(name)
    if _is_path(name):
        return load_model_file(Path(name))
    raise UnknownNameError("model", name, _builtin_models())


def load_hardware(name: str | HardwareProfile) -> HardwareProfile:
    """A built-in hardware profile by name (``'h100-sxm'``), or a YAML file by path."""
    if isinstance(name, HardwareProfile):
        return name
    if name in _builtin_hardware():
        return _load_builtin_hardware(name)
    if _is_path(name):
        return load_hardware_file(Path(name))
    raise UnknownNameError("hardware", name, _builtin_hardware())


def to_yaml(profile: BaseModel) -> str:
    """A profile as YAML, without fields left at their defaults, in declaration order."""
    data = profile.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
