"""``densnet active-learn``: the command-line face of :mod:`densnet_cli.active.loop`."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import click

from densnet_cli.active.loop import ActiveLearningConfig, level_option, run_active_learning
from densnet_cli.cli.train import training_options
from densnet_cli.reference.dft import LevelOfTheory
from densnet_cli.training.config import TrainConfig

_PATH = click.Path(path_type=Path)


LEVEL_HELP = {"xc": "Functional", "basis": "Orbital basis", "scf_auxbasis": "SCF J-fitting basis",
              "charge": "Molecular charge (e)", "spin": "2S = N_alpha - N_beta",
              "grid_level": "PySCF DFT grid level", "conv_tol": "SCF convergence (Hartree)",
              "density_basis": "Density basis", "constrain_dipole": "Dipole-constrained fit"}


def _level_options(command):
    """One option per level-of-theory field; none has a default: the initial dataset decides."""
    entries = [(f.name, f.default) for f in fields(LevelOfTheory) if f.default is not MISSING]
    entries += [("density_basis", ""), ("constrain_dipole", True)]
    for name, example in reversed(entries):
        help_text = (f"{LEVEL_HELP[name]} of the new labels, checked against INITIAL's "
                     f"(which is used) [default: INITIAL's].")
        if isinstance(example, bool):
            opt = level_option(name)[2:]
            command = click.option(f"--{opt}/--no-{opt}", f"level_{name}", default=None,
                                   help=help_text)(command)
        else:
            command = click.option(level_option(name), f"level_{name}", type=type(example),
                                   default=None, help=help_text)(command)
    return command


@click.command("active-learn")
@click.argument("initial", nargs=-1, required=True, type=_PATH)
@click.option("--work", type=_PATH, required=True,
              help="Directory of the rounds, state.json and report.{md,json,png}; rerunning "
                   "the same command resumes there.")
@click.option("--committee", default=3, show_default=True,
              help="Models per committee (seeds --seed, --seed + 1, ...).")
@click.option("--replicas", default=4, show_default=True, help="ML-MD replicas per round.")
@click.option("--md-steps", default=2000, show_default=True, help="ML-MD steps per round.")
@click.option("--temperature", default=300.0, show_default=True,
              help="Langevin temperature (K); higher explores further.")
@click.option("--friction", default=10.0, show_default=True, help="Langevin friction (ps⁻¹).")
@click.option("--timestep", default=0.5, show_default=True, help="MD time step (fs).")
@click.option("--stride", default=10, show_default=True,
              help="MD steps between stored frames (the candidates for labelling).")
@click.option("--select", default=10, show_default=True,
              help="Frames labelled per round: the largest force disagreement.")
@click.option("--min-separation", default=50.0, show_default=True,
              help="Least time (fs) between two selected frames of one replica.")
@click.option("--threshold", default=0.1, show_default=True,
              help="Stop when the force disagreement (eV/Å; see --stop-on) of a round's ML-MD "
                   "is below this and no replica had to be stopped.")
@click.option("--stop-on", type=click.Choice(["p95", "max"]), default="p95", show_default=True,
              help="Which statistic of the round's force disagreement meets --threshold.")
@click.option("--cap-factor", default=10.0, show_default=True,
              help="A replica stops once its force disagreement exceeds this × --threshold.")
@click.option("--max-rounds", default=5, show_default=True,
              help="Rounds at most (rerun with more to continue a finished loop).")
@_level_options
@click.option("--max-cycle", default=100, show_default=True,
              help="SCF iterations per attempt when labelling.")
@click.option("--workers", default=1, show_default=True,
              help="fit-density worker processes (frames in parallel).")
@click.option("--threads", default=0, show_default=True,
              help="Torch and PySCF threads (0: their defaults).")
@click.option("--config", "config_path", type=_PATH,
              help="YAML file of training options (keys as the training options below; the "
                   "command line wins).")
@training_options
def active_learn(initial, work, config_path, **options) -> None:
    """Grow INITIAL.h5 [MORE.h5 ...] where a committee of models disagrees along its own MD.

    Each round: train a committee of --committee models (different --seed; training options
    as for `densnet train`) on the initial data plus every earlier round's labelled frames;
    run --replicas Langevin MD replicas with the committee mean; store every --stride steps
    the force disagreement (max over atoms of the committee std of the force vector, eV/Å);
    label the --select frames with the largest disagreement (DFT + density fit at the
    initial dataset's level of theory); record uncertainty and true errors in
    WORK/report.md.  Stops when a round's disagreement is below --threshold, or after
    --max-rounds.  See docs/active-learning.md.
    """
    level = {k.removeprefix("level_"): options.pop(k) for k in list(options)
             if k.startswith("level_")}
    loop_names = {f.name for f in fields(ActiveLearningConfig)}
    loop = {k: options.pop(k) for k in list(options) if k in loop_names}
    train = TrainConfig.from_sources(config_path, options)
    cfg = ActiveLearningConfig(initial=tuple(initial), work=work, train=train,
                               level={k: v for k, v in level.items() if v is not None}, **loop)
    summary = run_active_learning(cfg)
    last = summary.rounds[-1]
    md = last["md"]["force_disagreement_eV_per_A"]
    value = md[cfg.stop_on]
    verdict = {"converged": "converged", "max-rounds": f"stopped after {cfg.max_rounds} rounds "
                                                       "without converging"}[summary.status]
    click.echo(f"{verdict}: round {last['round']} force disagreement {cfg.stop_on} "
               f"{'–' if value is None else f'{value:.3g}'} eV/Å (threshold {cfg.threshold:g})")
    click.echo(f"  training frames: {last['n_training_frames']}; final committee: "
               f"{Path(summary.final_models[0]).parent}")
    click.echo(f"  report: {work / 'report.md'}")
