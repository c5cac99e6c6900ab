"""``densnet train`` options: one frozen dataclass, filled from a YAML file and the command line.

Every field is also a command-line option (``--epochs-density`` for ``epochs_density``...) and a
key of the optional ``--config FILE.yaml``; the command line overrides the file, which
overrides the defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from densnet_cli.errors import InputError
from densnet_cli.model.densnet import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (units in the comments)."""

    # data
    val_fraction: float = 0.1  # share of frames held out for validation (seeded split)
    seed: int = 0
    # stages (epochs; 0 skips the stage)
    epochs_density: int = 100
    epochs_refine: int = 0  # density vs the true DFT density on a grid (needs stored DMs)
    epochs_energy: int = 200
    epochs_joint: int = 0
    # optimisation
    batch_size: int = 8  # molecules per batch (per process under torchrun)
    lr: float = 5e-3
    lr_factor: float = 0.5  # ReduceLROnPlateau factor on the validation loss
    lr_patience: int = 10  # epochs without improvement before the LR is reduced
    early_stopping: int = 30  # epochs without improvement before a stage stops
    ema_decay: float = 0.99  # exponential moving average of weights (validation, final model)
    clip_grad: float = 10.0  # gradient-norm clipping
    # loss weights
    w_density: float = 1.0  # Coulomb-metric density error, Hartree per molecule
    w_grid: float = 100.0  # real-space ∫|ρ − ρ_DFT| / N per molecule (refine stage)
    w_dipole: float = 10.0  # (e·Å)² per molecule
    w_energy: float = 1.0  # (eV/atom)²
    w_forces: float = 10.0  # (eV/Å)² per component
    # model (see densnet_cli.model.densnet.ModelConfig)
    cutoff: float = 4.0  # Å
    n_radial: int = 8
    lmax_edge: int = 3
    density_features: int = 32
    density_layers: int = 3
    energy_features: int = 32
    energy_lmax: int = 2
    energy_layers: int = 2
    radial_hidden: int = 32
    delta: bool = True  # False: learn the full density without the SAD prior (--no-delta)
    max_exponent_factor: float = 1.0  # > 1: flexible basis, exponents × [1/f, f] (refine stage)
    pair_repulsion: bool = True  # ZBL nuclear repulsion below bonding distances
    charge_flow: bool = True  # local electron count: neutral atoms + learned edge flows
    repulsion_radius_scale: float = 1.0  # ZBL envelope ends at this × sum of covalent radii
    init_density: str = ""  # model file whose density network (weights) this run starts from
    grid_level: int = 0  # PySCF grid level of the refine stage's real-space loss
    # execution
    dtype: str = "float32"  # float32 | float64
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True

    def model_config(self, avg_num_neighbors: float) -> ModelConfig:
        """The architecture part, with the neighbour count measured on the training data."""
        names = {f.name for f in fields(ModelConfig)} - {"avg_num_neighbors"}
        return ModelConfig(avg_num_neighbors=avg_num_neighbors,
                           **{n: getattr(self, n) for n in names})

    def as_dict(self) -> dict:
        """Plain-data form (stored in checkpoints and the model file)."""
        return asdict(self)

    @classmethod
    def from_sources(cls, yaml_path: Path | None, overrides: dict) -> TrainConfig:
        """Defaults ← YAML file ← explicit command-line values (``None`` = not given)."""
        values: dict = {}
        if yaml_path is not None:
            try:
                loaded = yaml.safe_load(Path(yaml_path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise InputError(f"cannot read config {yaml_path}: {exc}".splitlines()[0]
                                 ) from None
            if not isinstance(loaded, dict):
                raise InputError(f"config {yaml_path} must be a mapping of option: value")
            values.update({k.replace("-", "_"): v for k, v in loaded.items()})
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(f"unknown training option(s) {', '.join(unknown)}"
                             + (f" in {yaml_path}" if yaml_path else ""))
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Reject values that cannot work, naming the option."""
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("batch_size", "lr", "cutoff"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if min(self.epochs_density, self.epochs_refine, self.epochs_energy,
               self.epochs_joint) < 0:
            raise InputError("epochs must be >= 0")
        if self.max_exponent_factor < 1.0:
            raise InputError(f"max_exponent_factor must be >= 1 (1 = fixed basis), got "
                             f"{self.max_exponent_factor}")
        if self.max_exponent_factor > 1.0 and self.epochs_refine == 0:
            raise InputError("a flexible basis (max_exponent_factor > 1) learns its exponents "
                             "only against the DFT density: set epochs_refine > 0")
        if not 0.0 < self.repulsion_radius_scale <= 1.0:
            raise InputError(f"repulsion_radius_scale must be in (0, 1], got "
                             f"{self.repulsion_radius_scale}")
        if self.init_density and not Path(self.init_density).is_file():
            raise InputError(f"init_density: no model file {self.init_density}")
        if not 0 <= self.grid_level <= 9:
            raise InputError(f"grid_level must be 0-9, got {self.grid_level}")
