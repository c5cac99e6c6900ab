"""The active-learning loop, round by round, resumable from the files it leaves.

    WORK/state.json                  the settings that define the rounds (checked on every rerun)
    WORK/round_NNN/models/member_K.pt    committee (member_K.pt.ckpt while training)
    WORK/round_NNN/md/trajectory.npz     ML-MD frames and disagreement (checkpoint.npz meanwhile)
    WORK/round_NNN/selected.xyz          frames chosen for labelling
    WORK/round_NNN/labelled.h5           their DFT labels (fit-density; .parts/ meanwhile)
    WORK/round_NNN/stats.json            what the round measured: the round is finished
    WORK/report.{json,md,png}            all rounds so far

Every file appears atomically and only when complete, so a stage is done exactly when its file
exists; a rerun skips finished stages and continues unfinished ones (training and MD from their
checkpoints, labelling from its part store).  Round r trains on the initial datasets plus the
``labelled.h5`` of rounds 0 … r − 1.  The loop stops after the first round whose ML-MD
disagreement (95th percentile or max over its frames) is below the threshold with no replica
stopped — that round's frames are still labelled, as an independent test of the final
committee — or after ``max_rounds``.
"""

from __future__ import annotations

import fcntl
import json
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import ase.io
import numpy as np

from densnet_cli.active.committee import Committee, Log, train_committee
from densnet_cli.active.exploration import ExplorationSettings, explore
from densnet_cli.active.report import trajectory_statistics, true_errors, write_report
from densnet_cli.active.selection import select_frames, write_selected
from densnet_cli.data.atomic import write_text
from densnet_cli.data.geometries import file_sha256
from densnet_cli.data.hdf5 import DensityDataset, read_metadata
from densnet_cli.errors import DenSNetError, InputError
from densnet_cli.reference.dft import LevelOfTheory
from densnet_cli.reference.partstore import PartStore, identity_differences
from densnet_cli.training.config import TrainConfig

LEVEL_FIELDS = [f.name for f in fields(LevelOfTheory)] + ["density_basis", "constrain_dipole"]
# Training options that do not change the numbers (free to differ between reruns).
FREE_TRAIN_FIELDS = ("progress", "device")


def level_option(name: str) -> str:
    """The command-line option of a level-of-theory field (``--grid-level`` is training's)."""
    return "--dft-grid-level" if name == "grid_level" else "--" + name.replace("_", "-")


@dataclass(frozen=True)
class ActiveLearningConfig:
    """All options of ``densnet active-learn`` (units in the comments)."""

    initial: tuple[Path, ...]
    work: Path
    train: TrainConfig = field(default_factory=TrainConfig)
    committee: int = 3
    replicas: int = 4
    md_steps: int = 2000
    temperature: float = 300.0  # K
    friction: float = 10.0  # ps⁻¹, Langevin
    timestep: float = 0.5  # fs
    stride: int = 10  # MD steps between stored frames
    select: int = 10  # frames labelled per round
    min_separation: float = 50.0  # fs between two selected frames of one replica
    threshold: float = 0.1  # eV/Å, on the force disagreement
    cap_factor: float = 10.0  # a replica stops above cap_factor × threshold
    stop_on: str = "p95"  # p95 | max
    max_rounds: int = 5
    level: dict = field(default_factory=dict)  # level-of-theory values given by the user
    max_cycle: int = 100  # SCF iterations per attempt
    workers: int = 1  # fit-density worker processes
    threads: int = 0  # torch and PySCF threads (0: their defaults)

    def validate(self) -> None:
        """Reject values that cannot work, naming the option."""
        checks = [
            (not self.initial, "give at least one initial dataset"),
            (self.committee < 2, f"--committee must be at least 2, got {self.committee}"),
            (self.replicas < 1, f"--replicas must be at least 1, got {self.replicas}"),
            (self.md_steps < 1, f"--md-steps must be at least 1, got {self.md_steps}"),
            (not self.temperature > 0, f"--temperature must be > 0 K, got {self.temperature}"),
            (not self.friction > 0, f"--friction must be > 0 ps⁻¹, got {self.friction}"),
            (not self.timestep > 0, f"--timestep must be > 0 fs, got {self.timestep}"),
            (self.stride < 1, f"--stride must be at least 1, got {self.stride}"),
            (self.select < 1, f"--select must be at least 1, got {self.select}"),
            (not self.min_separation >= 0, "--min-separation must be ≥ 0 fs"),
            (not self.threshold > 0, f"--threshold must be > 0 eV/Å, got {self.threshold}"),
            (not self.cap_factor > 1, f"--cap-factor must be > 1, got {self.cap_factor}"),
            (self.stop_on not in ("p95", "max"), f"--stop-on must be p95 or max, got "
                                                 f"{self.stop_on!r}"),
            (self.max_rounds < 1, f"--max-rounds must be at least 1, got {self.max_rounds}"),
            (self.workers < 1, f"--workers must be at least 1, got {self.workers}"),
            (self.threads < 0, f"--threads must be ≥ 0, got {self.threads}"),
            (self.max_cycle < 1, f"--max-cycle must be at least 1, got {self.max_cycle}"),
        ]
        for bad, message in checks:
            if bad:
                raise InputError(message)
        unknown = sorted(set(self.level) - set(LEVEL_FIELDS))
        if unknown:
            raise InputError(f"unknown level-of-theory option(s) {', '.join(unknown)}")
        for path in self.initial:
            if not Path(path).is_file():
                raise InputError(f"initial dataset {path} does not exist")
        if self.work.exists() and not self.work.is_dir():
            raise InputError(f"--work {self.work} exists and is not a directory")

    def exploration(self, round_index: int) -> ExplorationSettings:
        """The ML-MD protocol of a round."""
        return ExplorationSettings(
            replicas=self.replicas, steps=self.md_steps, timestep_fs=self.timestep,
            temperature_k=self.temperature, friction_per_ps=self.friction, stride=self.stride,
            max_disagreement=self.cap_factor * self.threshold,
            seed=(self.train.seed, round_index))

    def fixed_settings(self, initial: list[dict], labelling: dict) -> dict:
        """What finished rounds depend on: a rerun must not change any of it."""
        train = {k: v for k, v in self.train.as_dict().items() if k not in FREE_TRAIN_FIELDS}
        loop = {k: getattr(self, k) for k in (
            "committee", "replicas", "md_steps", "temperature", "friction", "timestep",
            "stride", "select", "min_separation", "threshold", "cap_factor")}
        return json.loads(json.dumps({"initial": initial, "labelling": labelling,
                                      "train": train, "loop": loop}))


def labelling_settings(paths: list[Path], given: dict) -> dict:
    """The initial datasets' level of theory and density basis; what the user gave must match."""
    settings = [read_metadata(p)["settings"] for p in paths]
    for p, s in zip(paths[1:], settings[1:], strict=True):
        if s != settings[0]:
            raise InputError(f"{p} was labelled with other settings than {paths[0]}; the "
                             f"initial datasets must share level of theory and density basis")
    found = {**settings[0]["level"], **{k: v for k, v in settings[0].items() if k != "level"}}
    for name, value in given.items():
        same = (str(value).casefold() == str(found[name]).casefold()
                if isinstance(value, str) else value == found[name])
        if not same:
            raise InputError(f"{level_option(name)} {value} differs from the initial dataset's "
                             f"{found[name]}: new frames are labelled at the level of theory of "
                             f"{paths[0]} (leave the option out)")
    return settings[0]


def _state(work: Path, fixed: dict) -> None:
    """Create ``state.json``, or check that it was written with the same fixed settings."""
    path = work / "state.json"
    if path.exists():
        found = json.loads(path.read_text())["settings"]
        diff = identity_differences(fixed, found)
        if diff:
            raise InputError(f"{work} holds rounds run with different {', '.join(diff)}; rerun "
                             f"with the same settings or choose another --work directory")
    else:
        write_text(path, json.dumps({"settings": fixed}, indent=1))


def converged(stats: dict, threshold: float, stop_on: str) -> bool:
    """Whether a round's ML-MD stayed below the threshold (no replica stopped)."""
    md = stats["md"]
    value = md["force_disagreement_eV_per_A"][stop_on]
    return md["replicas_stopped"] == 0 and value is not None and value < threshold


@dataclass
class Summary:
    """The outcome of a run of the loop."""

    status: str  # converged | max-rounds (the report also says "running" between rounds)
    rounds: list[dict]
    final_models: list[str]


def run_active_learning(cfg: ActiveLearningConfig, log: Log | None = None) -> Summary:
    """Run rounds until convergence or ``max_rounds``, resuming what earlier runs left."""
    log = log or _stderr
    cfg.validate()
    cfg = replace(cfg, work=cfg.work.resolve())  # paths in checkpoints must not depend on cwd
    initial = [Path(p).resolve() for p in cfg.initial]
    labelling = labelling_settings(initial, cfg.level)
    cfg.work.mkdir(parents=True, exist_ok=True)
    with open(cfg.work / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another active-learn run is using {cfg.work}") from None
        _state(cfg.work, cfg.fixed_settings(
            [{"path": str(p), "sha256": file_sha256(p)} for p in initial], labelling))
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        return _rounds(cfg, initial, labelling, log)


def _rounds(cfg: ActiveLearningConfig, initial: list[Path], labelling: dict,
            log: Log) -> Summary:
    rounds: list[dict] = []
    datasets = list(initial)
    lost_report = not (cfg.work / "report.json").exists()  # rebuilt with every round
    for r in range(cfg.max_rounds):
        prefix = f"{_round_dir(r)}: "
        stats, new = _round(cfg, r, datasets, labelling, _prefixed(log, prefix))
        rounds.append(stats)
        if stats["labelled"]:
            datasets.append(cfg.work / _round_dir(r) / "labelled.h5")
        done = converged(stats, cfg.threshold, cfg.stop_on)
        status = ("converged" if done else
                  "max-rounds" if r == cfg.max_rounds - 1 else "running")
        if new or lost_report:
            write_report(cfg.work, rounds, {"status": status, "threshold": cfg.threshold,
                                            "stop_on": cfg.stop_on,
                                            "final_models": stats["models"]})
        md = stats["md"]["force_disagreement_eV_per_A"]
        log(f"{prefix}force disagreement {cfg.stop_on} {_eva(md[cfg.stop_on])}, max "
            f"{_eva(md['max'])}, {stats['md']['replicas_stopped']} replicas stopped; "
            f"{'below' if done else 'not below'} the threshold {cfg.threshold:g} eV/Å")
        if done:
            return Summary("converged", rounds, stats["models"])
        if not stats["labelled"] and r < cfg.max_rounds - 1:
            raise DenSNetError(f"round {r} added no frames to the training set (none selected "
                               f"or none converged), so the next round would repeat it; "
                               f"see {cfg.work / _round_dir(r)}")
    return Summary("max-rounds", rounds, rounds[-1]["models"])


def _prefixed(log: Log, prefix: str) -> Log:
    return lambda message: log(prefix + message)


def _eva(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g} eV/Å"


def _round_dir(r: int) -> str:
    return f"round_{r:03d}"


def _round(cfg: ActiveLearningConfig, r: int, datasets: list[Path], labelling: dict,
           log: Log) -> tuple[dict, bool]:
    """One round, skipping its finished stages; returns (its statistics, whether new)."""
    directory = cfg.work / _round_dir(r)
    stats_path = directory / "stats.json"
    if stats_path.exists():
        log("already done")
        return json.loads(stats_path.read_text()), False
    directory.mkdir(parents=True, exist_ok=True)
    training = [f for p in datasets for f in DensityDataset(p)]
    log(f"train a committee of {cfg.committee} on {len(training)} frames")
    paths = train_committee(cfg.train, datasets, directory / "models", cfg.committee, log)
    committee = Committee(paths, device=cfg.train.device,
                          charge=float(labelling["level"]["charge"]))

    numbers = training[0].numbers
    pool = [f.positions for f in training if np.array_equal(f.numbers, numbers)]
    rng = np.random.default_rng([cfg.train.seed, r, 0])
    starts = np.stack([pool[i] for i in rng.choice(len(pool), cfg.replicas,
                                                   replace=cfg.replicas > len(pool))])
    log(f"ML-MD: {cfg.replicas} replicas × {cfg.md_steps} steps of {cfg.timestep:g} fs at "
        f"{cfg.temperature:g} K")
    trajectory = explore(committee.evaluator(numbers), numbers, starts, cfg.exploration(r),
                         directory / "md", {"models": [file_sha256(p) for p in paths]}, log)

    selected = directory / "selected.xyz"
    if not selected.exists():
        chosen = select_frames(trajectory.force_disagreement, trajectory.replica,
                               trajectory.time_fs, cfg.select, cfg.min_separation)
        write_selected(selected, trajectory, chosen, r)
        log(f"selected {len(chosen)} frames (force disagreement "
            f"{_eva(trajectory.force_disagreement[chosen].min() if len(chosen) else None)} "
            f"to {_eva(trajectory.force_disagreement[chosen].max() if len(chosen) else None)})")
    info = ([{k: _plain(v) for k, v in a.info.items()} for a in ase.io.read(selected, ":")]
            if selected.stat().st_size else [])
    labelled = _label(cfg, selected, len(info), directory / "labelled.h5", labelling, log)

    frames = list(labelled) if labelled is not None else []
    failed = labelled.failed if labelled is not None else []
    prediction = (committee(numbers, np.stack([f.positions for f in frames]))
                  if frames else None)
    stats = {
        "round": r, "n_training_frames": len(training),
        "training_data": [str(p) for p in datasets], "models": [str(p) for p in paths],
        "md": trajectory_statistics(trajectory, cfg.threshold),
        "selected": len(info), "labelled": len(frames),
        "failed": [{"frame": i, "reason": m} for i, m in failed],
        "true_errors": (true_errors(prediction, frames, [info[f.source_index] for f in frames])
                        if prediction is not None else {"n_frames": 0}),
    }
    write_text(stats_path, json.dumps(stats, indent=1))
    return stats, True


def _label(cfg: ActiveLearningConfig, selected: Path, n_selected: int, output: Path,
           labelling: dict, log: Log) -> DensityDataset | None:
    """Label the selected frames (resumably) at the initial datasets' level of theory."""
    from densnet_cli.reference.runner import FitDensityConfig, run_fit_density

    if not output.exists():
        if not n_selected:
            return None
        log(f"label {n_selected} frames with DFT ({labelling['level']['xc']}/"
            f"{labelling['level']['basis']}, density basis {labelling['density_basis']})")
        fit = {k: v for k, v in labelling.items() if k != "level"}  # density basis, dipole
        summary = run_fit_density(FitDensityConfig(
            geometries=selected, output=output, **labelling["level"], **fit,
            max_cycle=cfg.max_cycle, workers=cfg.workers, threads=cfg.threads,
            progress=cfg.train.progress))
        if summary.failed:
            log(f"{len(summary.failed)} of {n_selected} frames did not converge and are "
                f"skipped: " + "; ".join(f"frame {i}: {m}" for i, m in summary.failed))
    PartStore(output).remove()  # a store kept for failed frames: they are skipped, not retried
    return DensityDataset(output)


def _plain(value):
    """A numpy scalar (as ASE reads extxyz info) as the Python number JSON can write."""
    return value.item() if isinstance(value, np.generic) else value


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

