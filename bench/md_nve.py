r"""NVE molecular dynamics with a trained model: stability, energy drift, IR spectrum.

    python bench/md_nve.py run [--model bench/results/models/delta_800.pt] [--replicas 8]
    python bench/md_nve.py report

The defaults are the ethanol validation (issue #6); ``--starts``, ``--out``, ``--results``,
``--harmonic`` and ``--experiment`` point the same protocol at another molecule (issue #7).

``run``: B replicas (frames spread over ``--starts``; rMD17 training frames for ethanol), each
thermalised
by Langevin dynamics at 300 K (γ = 10 ps⁻¹, 2 ps, not recorded), then NVE with velocity Verlet
at 0.5 fs (12.5 ps each: 100 ps in all with 8 replicas).  All replicas go through the model in
one call per step (densnet_cli.dynamics); resumable from ``OUT/checkpoint.npz``.
``--continue-from DIR --timestep-fs 0.25`` instead continues a finished run's final state at
another time step (no thermalisation): a drift that shrinks as the step squared is integration
error, one that stays comes from the model's energy surface.

``report``: conserved-energy drift per replica (linear fit, meV/ps), temperature, bond-length
statistics and a connectivity check on every stored frame (every 10 fs), and the IR spectrum
of all replicas (``densnet spectrum``'s code, harmonic quantum correction, absolute units) with
its peak table next to the harmonic analysis of ``bench/harmonic.py`` (model and PySCF) and the
experimental gas-phase bands of bench/experiment.py.  Writes RESULTS.{md,json,png}
(bench/results/md_ethanol.* by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase.data import chemical_symbols, covalent_radii

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.command import command_line, relative  # noqa: E402
from bench.experiment import EXPERIMENTS  # noqa: E402
from densnet_cli.calculator import ModelEvaluator  # noqa: E402
from densnet_cli.data.atomic import save_figure, write_text  # noqa: E402
from densnet_cli.dynamics.replicas import FS, Evaluation  # noqa: E402
from densnet_cli.dynamics.run import ReplicaRunSettings, final_state, run_replicas  # noqa: E402
from densnet_cli.errors import InputError  # noqa: E402
from densnet_cli.spectrum.run import SpectrumConfig, compute_spectrum  # noqa: E402
from densnet_cli.units import BOLTZMANN_EV_PER_K  # noqa: E402

OUT = ROOT / "bench/out/md_ethanol"
RESULTS = ROOT / "bench/results/md_ethanol"
STARTS = ROOT / "examples/ethanol/ethanol_rmd17_100.xyz"  # rMD17 frames 0-99 (training)
HARMONIC = ROOT / "bench/results/harmonic_ethanol.json"
BOND_FACTOR = 1.25  # a pair is bonded when closer than this × the sum of covalent radii


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if args.continue_from is None:
        frames = ase.io.read(args.starts, index=":")
        picks = np.linspace(0, len(frames) - 1, args.replicas).round().astype(int)
        starts = np.stack([frames[i].positions for i in picks])
        atoms, velocities = frames[0], None
        origin = f"{relative(args.starts)} frames {picks.tolist()}"
        thermalise_ps = args.thermalise_ps
    else:
        numbers, starts, velocities = final_state(args.continue_from)
        atoms = ase.Atoms(numbers=numbers, positions=starts[0])
        origin = f"final state of every replica of {relative(args.continue_from)}"
        thermalise_ps = 0.0
    evaluator = ModelEvaluator(args.model, device=args.device)
    evaluator.check_species(atoms.numbers, origin)

    def evaluate(positions: np.ndarray) -> Evaluation:
        p = evaluator(atoms.numbers, positions)
        return Evaluation(p.energy, p.forces, p.dipole)

    steps_per_ps = 1000.0 / args.timestep_fs
    settings = ReplicaRunSettings(
        timestep_fs=args.timestep_fs, temperature_k=args.temperature, friction_per_ps=10.0,
        thermalise_steps=round(thermalise_ps * steps_per_ps),
        nve_steps=round(args.nve_ps * steps_per_ps),
        position_stride=max(1, round(10.0 / args.timestep_fs)), seed=args.seed)
    started = time.perf_counter()
    run_replicas(evaluate, atoms.numbers, atoms.get_masses(), starts, args.out, settings,
                 start_velocities=velocities)
    meta = {"command": command_line(), "model": relative(args.model), "starts": origin,
            "settings": asdict(settings), "torch threads": args.threads,
            "wall seconds (this invocation)": round(time.perf_counter() - started, 1)}
    write_text(args.out / "run.json", json.dumps(meta, indent=1))
    print(f"wrote {args.out}/records.npz")


def bonds(numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(k, 2) bonded pairs of a geometry: closer than BOND_FACTOR × covalent radii sum."""
    r = covalent_radii[numbers]
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    i, j = np.nonzero(np.triu(d < BOND_FACTOR * (r[:, None] + r[None]), 1))
    return np.column_stack([i, j])


def stability(numbers: np.ndarray, positions: np.ndarray) -> dict:
    """Connectivity of every stored frame vs the first, and bond-length statistics (Å)."""
    reference = bonds(numbers, positions[0, 0].astype(float))
    symbols = np.array([chemical_symbols[z] for z in numbers])
    bonded = {tuple(b) for b in reference.tolist()}
    changed, pairs = 0, Counter()
    lengths = []
    for replica in positions:
        for frame in replica:
            frame = frame.astype(float)
            now = bonds(numbers, frame)
            if not np.array_equal(now, reference):
                changed += 1
                for i, j in {tuple(b) for b in now.tolist()} ^ bonded:
                    pairs[f"{symbols[i]}{i}–{symbols[j]}{j} "
                          f"{'lost' if (i, j) in bonded else 'formed'}"] += 1
            lengths.append(np.linalg.norm(frame[reference[:, 0]] - frame[reference[:, 1]],
                                          axis=-1))
    lengths = np.array(lengths)
    kinds: dict[str, list[int]] = {}
    for k, (i, j) in enumerate(reference):
        kinds.setdefault("–".join(sorted((symbols[i], symbols[j]))), []).append(k)
    table = {kind: {"bonds": len(cols), "mean": float(lengths[:, cols].mean()),
                    "std": float(lengths[:, cols].std()),
                    "min": float(lengths[:, cols].min()), "max": float(lengths[:, cols].max())}
             for kind, cols in sorted(kinds.items())}
    return {"frames_checked": int(positions.shape[0] * positions.shape[1]),
            "frames_with_changed_connectivity": changed,
            "changed_pairs_frames": dict(pairs.most_common()), "bond_lengths": table}


def drift(time_fs: np.ndarray, total: np.ndarray) -> dict:
    """Per-replica linear drift (meV/ps) and RMS fluctuation (meV) of the conserved energy.

    The drift is also fitted to each half of the run on its own: a steady leak (a force that
    is not the gradient of the energy, a time step too long) gives the same slope in both, a
    transient after the thermostat was switched off a first half that differs from the second.
    """
    t_ps = time_fs / 1000.0
    half = len(t_ps) // 2
    slopes, halves, rms = [], [], []
    for e in total:
        fit = np.polyfit(t_ps, e, 1)
        slopes.append(1e3 * fit[0])
        halves.append([1e3 * float(np.polyfit(t_ps[part], e[part], 1)[0])
                       for part in (slice(0, half), slice(half, None))])
        rms.append(1e3 * float(np.std(e - np.polyval(fit, t_ps))))
    return {"per_replica_meV_per_ps": slopes, "mean_abs_meV_per_ps": float(np.mean(np.abs(
        slopes))), "max_abs_meV_per_ps": float(np.max(np.abs(slopes))),
        "per_replica_halves_meV_per_ps": halves,
        "fluctuation_rms_meV": float(np.mean(rms))}


EXPERIMENT_WINDOW_CM1 = 150.0  # an experimental band farther from an MD peak is no match


def nearest(value: float, candidates: list[float]) -> float:
    return min(candidates, key=lambda c: abs(c - value))


def matched_band(value: float, bands: list[float]) -> float | None:
    """The nearest experimental band within :data:`EXPERIMENT_WINDOW_CM1`, else None (the
    band lists hold the assigned bands only, not every fundamental)."""
    best = nearest(value, bands)
    return best if abs(best - value) <= EXPERIMENT_WINDOW_CM1 else None


def signed(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def difference(peak, reference: float | None) -> float | None:
    return None if reference is None else peak.position_cm1 - reference


def report(args: argparse.Namespace) -> None:
    out, results = args.out, args.results
    data = np.load(out / "records.npz")
    run_meta = json.loads((out / "run.json").read_text())
    numbers, time_fs = data["numbers"], data["time_fs"]
    total = data["epot"] + data["ekin"]
    if not np.isfinite(total).all():
        raise SystemExit(f"{out}/records.npz is incomplete: rerun `bench/md_nve.py run`")
    # Runs made before the NVE stage removed the centre-of-mass drift carry a constant
    # translational kinetic energy: measure it from the stored positions and leave it out.
    masses = data["masses"]
    com = np.einsum("i,bfij->bfj", masses, data["positions"].astype(float)) / masses.sum()
    stride_fs = time_fs[-1] / (com.shape[1] - 1)
    v_com = (com[:, -1] - com[:, 0]) / (stride_fs * (com.shape[1] - 1)) / FS  # ASE units
    com_kinetic = 0.5 * masses.sum() * np.sum(v_com**2, axis=1)  # (B,) eV
    dof = 3 * len(numbers) - 3
    temperature = 2 * (data["ekin"] - com_kinetic[:, None]) / (dof * BOLTZMANN_EV_PER_K)
    n_replicas = total.shape[0]
    duration_ps = float(time_fs[-1]) / 1000.0
    energy = drift(time_fs, total)
    checks = stability(numbers, data["positions"])

    inputs = tuple(sorted(out.glob("replica_*.dipole.npy")))
    spectrum = compute_spectrum(SpectrumConfig(
        inputs=inputs, output=results.with_suffix(".csv"), max_lag=args.max_lag,
        temperature=300.0, intensity="absolute", min_wavenumber=100.0, max_wavenumber=4000.0,
        peak_threshold=0.02))
    modes = json.loads(args.harmonic.read_text())["modes"] if args.harmonic else []
    bands, experiment_source = EXPERIMENTS.get(args.experiment, ([], "none"))
    pyscf = [m["reference_cm1"] for m in modes]
    model = [m["model_cm1"] for m in modes]
    experiment = [b.wavenumber_cm1 for b in bands]
    peaks = []
    for p in sorted(spectrum.peaks, key=lambda p: p.position_cm1):
        ref, mod = (nearest(p.position_cm1, c) if c else None for c in (pyscf, model))
        exp = matched_band(p.position_cm1, experiment) if experiment else None
        peaks.append({"md_cm1": p.position_cm1, "integrated_km_mol": p.integrated,
                      "model_harmonic_cm1": mod, "md_minus_model_harmonic": difference(p, mod),
                      "pyscf_harmonic_cm1": ref, "md_minus_pyscf": difference(p, ref),
                      "experiment_cm1": exp, "md_minus_experiment": difference(p, exp)})
    result = {
        "molecule": args.name or args.experiment,
        "run": run_meta, "report command": command_line(),
        "replicas": n_replicas, "nve_ps_per_replica": duration_ps,
        "nve_ps_total": n_replicas * duration_ps,
        "mean_temperature_K": float(temperature.mean()),
        "centre_of_mass_kinetic_meV": (1e3 * com_kinetic).tolist(),
        "temperature_std_between_replicas_K": float(temperature.mean(axis=1).std()),
        "energy": energy, "stability": checks,
        "spectrum": {"correction": "harmonic", "max_lag_fs": args.max_lag,
                     "resolution_cm1": spectrum.lineshape.grid.resolution_cm1,
                     "peaks": peaks},
        "harmonic_source": relative(args.harmonic) if args.harmonic else None,
        "harmonic_note": args.harmonic_note,
        "experiment_source": experiment_source,
    }
    write_text(results.with_suffix(".json"), json.dumps(result, indent=1))
    write_text(results.with_suffix(".md"), markdown(result))
    plot(results.with_suffix(".png"), time_fs, total, temperature, spectrum, modes, experiment,
         timestep_fs=run_meta["settings"]["timestep_fs"])
    print(markdown(result))


def thermalise_ps(settings: dict) -> float:
    return settings["thermalise_steps"] * settings["timestep_fs"] / 1000.0


def markdown(r: dict) -> str:
    e, s = r["energy"], r["stability"]
    lines = [
        f"# {r['molecule'].capitalize()} NVE with DenSNet: stability, energy conservation, "
        "IR spectrum", "",
        f"Run: `{r['run']['command']}`  ",
        f"Report: `{r['report command']}`  ",
        f"Model: `{r['run']['model']}`; starts: {r['run']['starts']}  ",
        "Protocol: " + (f"Langevin 300 K (γ = {r['run']['settings']['friction_per_ps']} "
                         f"ps⁻¹, {thermalise_ps(r['run']['settings']):g} ps, not recorded), "
                         if r["run"]["settings"]["thermalise_steps"] else
                         "no thermalisation (continues a run's final state), ") + "then NVE, "
        f"velocity Verlet, {r['run']['settings']['timestep_fs']} fs; "
        f"{r['replicas']} replicas × {r['nve_ps_per_replica']:g} ps = "
        f"**{r['nve_ps_total']:g} ps of NVE**", "",
        *(["(The run used this script under its earlier name, bench/md_ethanol.py, before the "
           "NVE stage removed the Langevin centre-of-mass drift; the constant translation it "
           "left is measured and excluded from the temperature below.  "
           "`python bench/md_nve.py run` repeats it with the drift removed.)", ""]
          if "md_ethanol.py" in r["run"]["command"] else []),
        "## Energy conservation and stability", "",
        "| quantity | value |", "|---|---|",
        f"| mean temperature (NVE, 3n − 3 internal degrees of freedom) | "
        f"{r['mean_temperature_K']:.1f} K (replica means spread "
        f"{r['temperature_std_between_replicas_K']:.1f} K) |",
        "| centre-of-mass kinetic energy left by the Langevin stage (constant, excluded) | "
        + ", ".join(f"{x:.1f}" for x in r["centre_of_mass_kinetic_meV"]) + " meV |",
        f"| conserved-energy drift, mean abs over replicas | {e['mean_abs_meV_per_ps']:.3f} "
        "meV/ps |",
        f"| largest abs drift of a replica | {e['max_abs_meV_per_ps']:.3f} meV/ps |",
        f"| conserved-energy fluctuation (RMS about the fit) | {e['fluctuation_rms_meV']:.2f} "
        "meV |",
        f"| frames checked (every 10 fs) | {s['frames_checked']} |",
        f"| frames whose bond graph differs from the start | "
        f"{s['frames_with_changed_connectivity']} |", "",
        *([("Pairs whose bonding changed (atom indices; frames): " + ", ".join(
            f"{k} ({v})" for k, v in s["changed_pairs_frames"].items())), ""]
          if s.get("changed_pairs_frames") else []),
        "Per-replica drift (meV/ps): " + ", ".join(
            f"{d:+.3f}" for d in e["per_replica_meV_per_ps"]) + "; fitted to the first / "
        "second half of each run: " + ", ".join(
            f"{a:+.3f} / {b:+.3f}" for a, b in e["per_replica_halves_meV_per_ps"]), "",
        "| bond | count | mean Å | std Å | min Å | max Å |", "|---|---|---|---|---|---|",
        *(f"| {k} | {v['bonds']} | {v['mean']:.3f} | {v['std']:.3f} | {v['min']:.3f} | "
          f"{v['max']:.3f} |" for k, v in s["bond_lengths"].items()), "",
        "## IR spectrum (all replicas, harmonic quantum correction)", "",
        f"Resolution ~{r['spectrum']['resolution_cm1']:.1f} cm⁻¹ (max lag "
        f"{r['spectrum']['max_lag_fs']:g} fs).  Each MD peak is listed with the nearest "
        "harmonic mode of the model and of PySCF PBE/def2-SVP "
        f"(`{r['harmonic_source']}`{'; ' + r['harmonic_note'] if r.get('harmonic_note') else ''}"
        ") and the nearest experimental band within "
        f"{EXPERIMENT_WINDOW_CM1:.0f} cm⁻¹ ({r['experiment_source']}).  MD samples every "
        "conformer it reaches and anharmonic motion at 300 K; the harmonic columns are one "
        "conformer's normal modes.", "",
        "| MD peak cm⁻¹ | km/mol | model harm. | Δ | PySCF harm. | Δ | experiment | Δ |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {p['md_cm1']:.0f} | {p['integrated_km_mol']:.1f} | "
          f"{signed(p['model_harmonic_cm1'], '.0f')} | "
          f"{signed(p['md_minus_model_harmonic'], '+.0f')} | "
          f"{signed(p['pyscf_harmonic_cm1'], '.0f')} | {signed(p['md_minus_pyscf'], '+.0f')} | "
          f"{signed(p['experiment_cm1'], '.0f')} | "
          f"{signed(p['md_minus_experiment'], '+.0f')} |"
          for p in r["spectrum"]["peaks"]), "",
    ]
    return "\n".join(lines)


def plot(path: Path, time_fs, total, temperature, spectrum, modes, experiment,
         timestep_fs: float) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 10))
    t_ps = time_fs / 1000.0
    for k, e in enumerate(total):
        axes[0].plot(t_ps, 1e3 * (e - e[0]), lw=0.6, label=f"replica {k}")
    axes[0].set(xlabel="time (ps)", ylabel="E_total − E_total(0) (meV)",
                title=f"Conserved energy, NVE {timestep_fs:g} fs")
    axes[1].plot(t_ps, temperature.mean(axis=0), lw=0.5)
    axes[1].set(xlabel="time (ps)", ylabel="T (K), replica mean")
    ax = axes[2]
    ax.plot(spectrum.wavenumber_cm1, spectrum.intensity, color="k", lw=1, label="DenSNet MD")
    scale = spectrum.intensity.max() / max([m["reference_km_mol"] for m in modes], default=1.0)
    for i, m in enumerate(modes):
        ax.vlines(m["reference_cm1"], 0, scale * m["reference_km_mol"], color="tab:blue",
                  lw=1.5, label="PySCF harmonic (scaled)" if i == 0 else None)
    for i, x in enumerate(experiment):
        ax.axvline(x, color="tab:red", ls=":", lw=0.8,
                   label="experiment" if i == 0 else None)
    ax.set(xlabel="wavenumber (cm⁻¹)", ylabel="km mol⁻¹ (cm⁻¹)⁻¹", xlim=(100, 4000),
           title="IR spectrum: MD (harmonic correction) vs harmonic PySCF vs experiment")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", type=Path, default=ROOT / "bench/results/models/delta_800.pt")
    r.add_argument("--starts", type=Path, default=STARTS,
                   help="frames (any ASE format) the replicas start from, spread evenly")
    r.add_argument("--out", type=Path, default=OUT, help="work directory")
    r.add_argument("--replicas", type=int, default=8)
    r.add_argument("--thermalise-ps", type=float, default=2.0)
    r.add_argument("--nve-ps", type=float, default=12.5)
    r.add_argument("--temperature", type=float, default=300.0)
    r.add_argument("--seed", type=int, default=2026)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device", default="cpu")
    r.add_argument("--timestep-fs", type=float, default=0.5, help="velocity Verlet time step "
                   "(positions are stored every 10 fs whatever it is)")
    r.add_argument("--continue-from", type=Path, default=None, metavar="DIR",
                   help="start every replica from the final positions and velocities of the "
                   "finished run in DIR, with no thermalisation (--starts, --replicas and "
                   "--thermalise-ps are then not used): e.g. the same state at another "
                   "--timestep-fs, to tell integration error from a drift of the model")
    p = sub.add_parser("report")
    p.add_argument("--max-lag", type=float, default=1000.0, help="fs")
    p.add_argument("--out", type=Path, default=OUT, help="work directory of the run")
    p.add_argument("--results", type=Path, default=RESULTS, help="output prefix")
    p.add_argument("--harmonic", type=lambda text: None if text == "none" else Path(text),
                   default=HARMONIC,
                   help="bench/harmonic.py JSON of the same molecule, or none")
    p.add_argument("--harmonic-note", default="",
                   help="said of the harmonic reference in the report, e.g. that it is of a "
                        "shorter chain than the MD")
    p.add_argument("--experiment", choices=[*sorted(EXPERIMENTS), "none"], default="ethanol")
    p.add_argument("--name", default=None, help="the molecule, for the title "
                   "(default: --experiment)")
    args = parser.parse_args()
    try:
        run(args) if args.command == "run" else report(args)
    except InputError as error:  # a run too short for --max-lag, a model without a species...
        raise SystemExit(f"md_nve.py {args.command}: {error}") from None


if __name__ == "__main__":
    main()
