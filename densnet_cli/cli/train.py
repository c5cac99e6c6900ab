"""``densnet train``: options generated 1:1 from the fields of ``TrainConfig``."""

from __future__ import annotations

import os
from dataclasses import MISSING, fields
from pathlib import Path

import click

from densnet_cli.training.config import TrainConfig

HELP = {
    "val_fraction": "Share of frames held out for validation (seeded split).",
    "seed": "Seed of the split, the initial weights and the data order.",
    "epochs_density": "Epochs of the density stage: network vs fitted coefficients + DFT dipole.",
    "epochs_refine": "Epochs of the refine stage: density network vs the true DFT density on a "
                     "grid (real-space L1; datasets must store DFT density matrices).",
    "epochs_energy": "Epochs of the energy stage: energies + forces, density frozen.",
    "epochs_joint": "Epochs of the joint stage: both networks, every loss (0 skips it).",
    "batch_size": "Molecules per batch (per process under torchrun).",
    "lr": "Initial learning rate (Adam).",
    "lr_factor": "Factor of ReduceLROnPlateau on the validation loss.",
    "lr_patience": "Epochs without improvement before the learning rate is reduced.",
    "early_stopping": "Epochs without improvement before a stage stops.",
    "ema_decay": "Decay of the exponential moving average of the weights.",
    "clip_grad": "Gradient-norm clipping threshold.",
    "w_density": "Weight of the density loss (Coulomb-metric error, Hartree per molecule).",
    "w_grid": "Weight of the refine stage's ∫|ρ − ρ_DFT| / N per molecule.",
    "w_dipole": "Weight of the dipole loss ((e·Å)² per molecule).",
    "w_energy": "Weight of the energy loss ((eV/atom)²).",
    "w_forces": "Weight of the force loss ((eV/Å)² per component).",
    "cutoff": "Radius of the interaction graph (Å).",
    "n_radial": "Radial (Bessel) basis functions of edge lengths.",
    "lmax_edge": "Highest l of the edge spherical harmonics.",
    "density_features": "Scalar channels of the density network (halved per l).",
    "density_layers": "Interaction layers of the density network.",
    "energy_features": "Scalar channels of the energy network (halved per l).",
    "energy_lmax": "Highest l of the energy network's features.",
    "energy_layers": "Interaction layers of the energy network.",
    "radial_hidden": "Width of the radial MLPs.",
    "delta": "Learn Δ on top of the SAD prior (--no-delta: the full density, the ablation).",
    "max_exponent_factor": "Flexible basis when > 1: the network scales each shell's "
                           "exponents by a factor in [1/f, f] (learnt in the refine stage).",
    "pair_repulsion": "Add the ZBL screened nuclear repulsion, switched off at the sum of "
                      "covalent radii: a wall no data has to teach.",
    "charge_flow": "Impose the electron count locally: every atom neutral, then learned "
                   "antisymmetric flows move electrons between atoms within the cutoff "
                   "(--no-charge-flow: one projection per fragment, as models before it).",
    "repulsion_radius_scale": "The ZBL repulsion is switched off at this multiple of the sum "
                              "of covalent radii (1 as MACE; below 1 keeps it out of thermal "
                              "bond stretches).",
    "init_density": "Model file to take the density network from (same basis and density "
                    "architecture); with --epochs-density 0 only the energy network trains.",
    "grid_level": "PySCF grid level of the refine stage's real-space loss.",
    "dtype": "float32 or float64.",
    "device": "auto, cpu or cuda.",
    "progress": "Progress bar on stderr.",
}


def training_options(command):
    """Decorate ``command`` with one option per TrainConfig field (default: not given)."""
    for f in reversed(fields(TrainConfig)):
        name = f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = f"{HELP[f.name]}  [default: {default}]"
        if isinstance(default, bool):
            decl = f"--{name}/--no-{name}"
            command = click.option(decl, f.name, default=None, help=help_text)(command)
        else:
            command = click.option(f"--{name}", f.name, type=type(default), default=None,
                                   help=help_text)(command)
    return command


@click.command("train")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Model file to write; MODEL.ckpt, MODEL.log.jsonl and MODEL.curve.png "
                   "appear beside it.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="YAML file whose keys are the options below (the command line wins).")
@click.option("--resume", is_flag=True, help="Continue from MODEL.ckpt exactly.")
@training_options
def train(datasets, output, config_path, resume, **options) -> None:
    """Train a DenSNet model on DATASET.h5 files written by `densnet fit-density`.

    Stages: density (coefficients, dipole), optional refine (the density vs the true DFT
    density in real space; learns the exponents of a flexible basis), energy (energies,
    forces; density frozen), optional joint fine-tune.  Under `torchrun --nproc_per_node N
    densnet train ...` the batches are shared between N processes (gloo on CPU, NCCL on GPU).
    """
    from densnet_cli.training.data import load_training_data
    from densnet_cli.training.trainer import Trainer

    cfg = TrainConfig.from_sources(config_path, options)
    with _distributed():
        data = load_training_data(list(datasets),
                                  grid_level=cfg.grid_level if cfg.epochs_refine else None)
        final = Trainer(cfg, data, output, resume).run()
        if int(os.environ.get("RANK", 0)) == 0:
            terms = ", ".join(f"{k} {v:.3g}" for k, v in final.items())
            click.echo(f"wrote {output} (final validation: {terms})")


class _distributed:
    """Initialise torch.distributed when started by torchrun (WORLD_SIZE > 1)."""

    def __enter__(self):
        import torch
        import torch.distributed as dist

        self.active = int(os.environ.get("WORLD_SIZE", 1)) > 1
        if self.active:
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return self

    def __exit__(self, *exc):
        if self.active:
            import torch.distributed as dist

            dist.destroy_process_group()
