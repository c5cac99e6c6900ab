"""The model file: weights plus JSON metadata, loadable without unpickling code.

A model file is a ``torch.save`` archive of a plain dict — ``format``, ``format_version``,
``metadata`` (a JSON string) and ``state_dict`` (tensors) — read back with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers.
The metadata holds everything needed to rebuild the network (architecture, density basis, SAD
prior) and to know what it is (elements, units, package versions, training data and settings).
Files are written to a temporary name and renamed, so a model file that exists is complete.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from densnet_cli import __version__
from densnet_cli.basis.layout import BasisSet
from densnet_cli.data.atomic import atomic_output
from densnet_cli.errors import InputError
from densnet_cli.model.densnet import DenSNet, ModelConfig

FORMAT = "densnet-model"
FORMAT_VERSION = 1
UNITS = {"positions": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "dipole": "e*Angstrom",
         "coefficients": "electron-number-density weights, basis in a.u."}


def save_model(model: DenSNet, path: str | Path, extra: dict | None = None) -> None:
    """Write ``model`` to ``path`` atomically; ``extra`` (JSON-able) joins the metadata."""
    import e3nn

    path = Path(path)
    metadata = {
        "config": model.config.as_dict(),
        "basis": json.loads(model.basis.to_json()),
        "sad": {s: model.density.per_element("sad", s).tolist() for s in model.density.symbols},
        "elements": model.density.symbols,
        "units": UNITS,
        "versions": {"densnet": __version__, "torch": torch.__version__,
                     "e3nn": e3nn.__version__, "python": platform.python_version()},
        **(extra or {}),
    }
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "metadata": json.dumps(metadata),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def read_model_file(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, state_dict) of a model file, checked.

    Raises:
        InputError: if the file is missing, corrupted, not a DenSNet model or of another
            format version.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise InputError(f"cannot read model file {path}: not a valid DenSNet model "
                         f"({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path} is not a DenSNet model file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: model format version {payload.get('format_version')} is not "
                         f"{FORMAT_VERSION}")
    try:
        return json.loads(payload["metadata"]), payload["state_dict"]
    except (KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: model metadata is damaged ({exc})") from None


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an input error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but torch sees no CUDA GPU; "
                         f"use --device cpu (or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}: use auto, cpu or cuda[:N]")
    return torch.device(device)


def load_model(path: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float64) -> tuple[DenSNet, dict]:
    """Rebuild the model stored at ``path`` (eval mode) and return it with its metadata."""
    metadata, state = read_model_file(path)
    basis = BasisSet.from_json(json.dumps(metadata["basis"]))
    model = DenSNet(basis, metadata["sad"], ModelConfig(**metadata["config"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not match the stored architecture "
                         f"({str(exc).splitlines()[0]})") from None
    return model.to(device=device, dtype=dtype).eval(), metadata
