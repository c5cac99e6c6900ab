"""``densnet sample``: harmonic statistics, no overlaps, DFT Hessian, conformers, CLI."""

from __future__ import annotations

import json
import threading

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.data import covalent_radii

from densnet_cli.analysis.harmonic import PySCFCalculator, harmonic_analysis, optimise
from densnet_cli.data.hdf5 import DensityDataset
from densnet_cli.errors import DenSNetError, InputError
from densnet_cli.reference.dft import LevelOfTheory
from densnet_cli.sampling import normal_modes
from densnet_cli.sampling.conformers import Dihedral, read_structure, set_dihedrals
from densnet_cli.sampling.normal_modes import NormalModes, compute_normal_modes, modes_from_hessian
from densnet_cli.sampling.thermal import draw_samples
from tests.conftest import FAST, WATER, run_cli

FAST_LEVEL = LevelOfTheory(basis="sto-3g", grid_level=1, conv_tol=1e-9)

# CODATA 2018, written out so that the expected values do not share constants with the code.
K_B_EV, HBAR_J_S, EV_J, AMU_KG = 8.617333262e-5, 1.054571817e-34, 1.602176634e-19, 1.66053906660e-27


def spring_hessian(positions: np.ndarray, k: float) -> np.ndarray:
    """Cartesian Hessian (eV/Å²) of springs k (eV/Å²) between all pairs, at their rest lengths."""
    n = len(positions)
    hessian = np.zeros((n, 3, n, 3))
    for i in range(n):
        for j in range(i + 1, n):
            u = positions[j] - positions[i]
            block = k * np.outer(u, u) / (u @ u)
            hessian[i, :, i] += block
            hessian[j, :, j] += block
            hessian[i, :, j] -= block
            hessian[j, :, i] -= block
    return hessian.reshape(3 * n, 3 * n)


def spring_modes(k: float) -> tuple[NormalModes, np.ndarray]:
    """Normal modes of H2O2 held together by springs: 6 vibrations, a known Hessian."""
    atoms = molecule("H2O2")
    hessian = spring_hessian(atoms.positions, k)
    return modes_from_hessian(atoms.numbers, atoms.positions, atoms.get_masses(), hessian), hessian


def sampled_energies(modes: NormalModes, hessian: np.ndarray, samples) -> np.ndarray:
    """½ Δxᵀ H Δx of each sample with the Cartesian Hessian."""
    dx = (samples.positions - modes.positions).reshape(len(samples.positions), -1)
    return 0.5 * np.einsum("si,ij,sj->s", dx, hessian, dx)


def test_classical_samples_hold_half_kt_per_mode():
    modes, hessian = spring_modes(k=30.0)
    samples = draw_samples(modes, 20000, 300.0, np.random.default_rng(1))
    energies = sampled_energies(modes, hessian, samples)
    np.testing.assert_allclose(samples.harmonic_energy, energies, rtol=1e-8)
    assert samples.n_rejected == 0  # rejection would cut the tail and bias the mean
    m, kt = 6, K_B_EV * 300.0
    expected, error = 0.5 * m * kt, np.sqrt(m / 2) * kt / np.sqrt(len(energies))
    assert abs(energies.mean() - expected) < 4 * error, (energies.mean() / expected)


@pytest.mark.parametrize("temperature", [0.0, 300.0])
def test_quantum_samples_hold_the_quantum_harmonic_energy(temperature):
    modes, hessian = spring_modes(k=30.0)
    samples = draw_samples(modes, 20000, temperature, np.random.default_rng(2), quantum=True)
    energies = sampled_energies(modes, hessian, samples)
    inv_sqrt_m = np.repeat(modes.masses**-0.5, 3)
    eigenvalues = np.linalg.eigvalsh(inv_sqrt_m[:, None] * hessian * inv_sqrt_m)[6:]
    hbar_omega = HBAR_J_S * np.sqrt(eigenvalues * EV_J / (1e-20 * AMU_KG)) / EV_J  # eV
    x = hbar_omega / (2 * K_B_EV * temperature) if temperature else np.inf
    theta = 0.5 * hbar_omega / np.tanh(x)
    expected, error = 0.5 * theta.sum(), np.sqrt(0.5 * (theta**2).sum() / len(energies))
    assert abs(energies.mean() - expected) < 4 * error, (energies.mean() / expected)


def test_soft_and_imaginary_modes_are_not_displaced():
    modes, hessian = spring_modes(k=30.0)
    lowest = modes.modes[0].ravel() * np.repeat(np.sqrt(modes.masses), 3)  # Cartesian ∝ M^-½ e
    lowest /= np.linalg.norm(lowest)
    soft = modes_from_hessian(modes.numbers, modes.positions, modes.masses,
                              hessian - 40.0 * np.outer(lowest, lowest))
    assert soft.frequencies_cm1[0] < 0
    samples = draw_samples(soft, 200, 1000.0, np.random.default_rng(3))
    assert not samples.displaced[0] and samples.displaced[1:].all()
    dq = (samples.positions - soft.positions).reshape(200, -1) * np.repeat(np.sqrt(soft.masses), 3)
    assert np.abs(dq @ soft.modes[0].ravel()).max() < 1e-10


def test_no_overlapping_atoms_even_when_very_hot():
    modes, _ = spring_modes(k=0.5)  # soft springs: large amplitudes
    samples = draw_samples(modes, 500, 5000.0, np.random.default_rng(4))
    assert len(samples.positions) == 500 and samples.n_rejected > 0
    i, j = np.triu_indices(4, 1)
    distances = np.linalg.norm(samples.positions[:, j] - samples.positions[:, i], axis=-1)
    radii = covalent_radii[modes.numbers]
    assert np.all(distances >= 0.5 * (radii[i] + radii[j]))
    squashed = 0.3 * modes.positions  # every draw has overlapping atoms
    squashed_modes = modes_from_hessian(modes.numbers, squashed, modes.masses,
                                        spring_hessian(squashed, 30.0))
    with pytest.raises(DenSNetError, match="lower the temperature"):
        draw_samples(squashed_modes, 10, 300.0, np.random.default_rng(4))


@pytest.fixture(scope="module")
def water_modes() -> NormalModes:
    return compute_normal_modes(WATER, FAST_LEVEL, threads=1)


def test_analytic_hessian_matches_finite_differences(water_modes):
    geometry = Atoms(numbers=water_modes.numbers, positions=water_modes.positions)
    fd = harmonic_analysis(geometry, PySCFCalculator(FAST_LEVEL, threads=1), progress=False)
    assert water_modes.method == "analytic" and water_modes.frequencies_cm1.shape == (3,)
    np.testing.assert_allclose(water_modes.frequencies_cm1, fd.frequencies_cm1, atol=3.0)


def test_finite_differences_stand_in_without_an_analytic_hessian(water_modes, monkeypatch):
    def no_hessian(atoms, level, threads=None):
        return water_modes.energy, None

    monkeypatch.setattr(normal_modes, "dft_hessian", no_hessian)
    start = Atoms(numbers=water_modes.numbers, positions=water_modes.positions)
    fd = compute_normal_modes(start, FAST_LEVEL, threads=1)
    assert fd.method == "finite-difference"
    np.testing.assert_allclose(fd.frequencies_cm1, water_modes.frequencies_cm1, atol=3.0)


def test_normal_modes_round_trip_through_their_file(water_modes, tmp_path):
    water_modes.save(tmp_path / "m.json")
    again = NormalModes.load(tmp_path / "m.json")
    for key, value in water_modes.__dict__.items():
        np.testing.assert_array_equal(getattr(again, key), value)


def test_sample_command_output_is_labelled_by_fit_density(tmp_path, monkeypatch):
    ase.io.write(tmp_path / "water.xyz", WATER)
    out = tmp_path / "samples.xyz"
    code, stdout, err = run_cli("sample", tmp_path / "water.xyz", "-o", out, "--n-samples", 3,
                                "--temperature", 5000, "--seed", 7, *FAST)
    assert code == 0, err
    assert "3 frames" in stdout and "redrawn for overlapping atoms" in stdout
    frames = ase.io.read(out, ":")
    assert len(frames) == 3
    assert {f.info["conformer"] for f in frames} == {0} and frames[0].info["seed"] == 7
    assert frames[0].info["temperature"] == 5000.0 and frames[0].info["harmonic_energy"] > 0
    summary = json.loads(out.with_suffix(".modes.json").read_text())
    assert len(summary["conformers"][0]["frequencies_cm1"]) == 3
    cache = tmp_path / "densnet-cache"  # the finished optimisation's checkpoint is gone
    assert list(cache.glob("modes-*.json")) and not list(cache.glob("optimisation-*.npz"))

    code, _, err = run_cli("fit-density", out, "-o", tmp_path / "samples.h5", *FAST)
    assert code == 0, err
    assert len(DensityDataset(tmp_path / "samples.h5")) == 3

    def no_dft(*args, **kwargs):
        raise AssertionError("the cached optimisation and Hessian were not reused")

    monkeypatch.setattr(normal_modes, "compute_normal_modes", no_dft)
    code, _, err = run_cli("sample", tmp_path / "water.xyz", "-o", tmp_path / "quantum.xyz",
                           "--n-samples", 4, "--temperature", 10, "--quantum", *FAST)
    assert code == 0, err
    assert len(ase.io.read(tmp_path / "quantum.xyz", ":")) == 4


def test_dihedral_rotates_one_side_of_the_bond():
    ethanol = molecule("CH3CH2OH")  # C0 (methyl) C1 O2 H3 (hydroxyl), H4-H5 on C1, H6-H8 on C0
    dihedral, side = (3, 2, 1, 0), [0, 1, 4, 5, 6, 7, 8]  # C1's side of the bond O2–C1
    turned = set_dihedrals(ethanol, (Dihedral(dihedral, 60.0),))
    assert turned.get_dihedral(*dihedral) == pytest.approx(60.0)
    moved = np.linalg.norm(turned.positions - ethanol.positions, axis=1) > 1e-9
    assert set(np.flatnonzero(moved)) <= set(side)
    np.testing.assert_allclose(turned.get_all_distances()[np.ix_(side, side)],
                               ethanol.get_all_distances()[np.ix_(side, side)], atol=1e-12)
    benzene = molecule("C6H6")
    with pytest.raises(InputError, match="in a ring"):
        set_dihedrals(benzene, (Dihedral((5, 0, 1, 2), 30.0),))


def test_dihedral_conformers_are_sampled_and_recorded(tmp_path):
    peroxide = molecule("H2O2")  # O0 O1 H2 H3, H-O-O-H about 121°
    ase.io.write(tmp_path / "h2o2.xyz", peroxide)
    out = tmp_path / "conf.xyz"
    code, _, err = run_cli("sample", tmp_path / "h2o2.xyz", "-o", out, "--n-samples", 4,
                           "--dihedral", "2,0,1,3=0", *FAST)
    assert code == 0, err
    assert {f.info["conformer"] for f in ase.io.read(out, ":")} == {0, 1}
    summary = json.loads(out.with_suffix(".modes.json").read_text())
    starts = [Atoms(peroxide.numbers, c["start_positions"]) for c in summary["conformers"]]
    assert starts[0].get_dihedral(2, 0, 1, 3) == pytest.approx(peroxide.get_dihedral(2, 0, 1, 3))
    assert starts[1].get_dihedral(2, 0, 1, 3) % 360 == pytest.approx(0.0, abs=1e-6)
    assert [c["n_samples"] for c in summary["conformers"]] == [2, 2]
    # Planar cis H2O2 stays planar: a saddle point, whose imaginary torsion is not sampled.
    cis = summary["conformers"][1]
    assert cis["frequencies_cm1"][0] < 0 and not cis["displaced_modes"][0]
    assert "warning: conformer 1" in err and "imaginary" in err


def test_smiles_needs_rdkit_or_gives_a_structure():
    try:
        import rdkit  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="SMILES input needs RDKit"):
            read_structure("CCO")
        return
    ethanol = read_structure("CCO")
    assert ethanol.get_chemical_formula() == "C2H6O"


WATER_XYZ = "3\n\nO 0 0 0.119\nH 0 0.763 -0.477\nH 0 -0.763 -0.477\n"


@pytest.mark.parametrize(("content", "extra", "message"), [
    (None, [], "does not exist"),
    ("this is not a geometry\n", [], "cannot read geometries"),
    (WATER_XYZ, ["--n-samples", "0"], "--n-samples must be at least 1"),
    (WATER_XYZ, ["--temperature", "-5"], "--temperature must be ≥ 0 K"),
    (WATER_XYZ, ["--temperature", "0"], "use --quantum"),
    (WATER_XYZ, ["--xc", "nonsense"], "--xc 'nonsense' is not a functional"),
    (WATER_XYZ, ["--spin", "1"], "not consistent"),
    (WATER_XYZ, ["--dihedral", "1,0,2,7=60"], "atom index 7 is out of range"),
    (WATER_XYZ, ["--dihedral", "1,0,2=60"], "is not of the form i,j,k,l=ANGLE"),
    (WATER_XYZ, ["--dihedral", "1,0,2,1=60"], "must be different"),
    (WATER_XYZ, ["--weights", "1,2"], "--weights '1,2' must be 1 non-negative"),
    (WATER_XYZ, ["--index", "5"], "--index 5 is out of range"),
    (WATER_XYZ, ["--workers", "0"], "--workers must be ≥ 1, not 0"),
    ("2\n\nH 0 0 0\nH 0 0 0.2\n", [], "atoms 0 (H) and 1 (H) are 0.200 Å apart"),
])
def test_bad_input_is_one_clear_line_and_no_output(tmp_path, content, extra, message):
    geometry = tmp_path / "in.xyz"
    if content is not None:
        geometry.write_text(content)
    code, _, err = run_cli("sample", geometry, "-o", tmp_path / "out.xyz", *FAST, *extra)
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not (tmp_path / "out.xyz").exists() and not (tmp_path / "densnet-cache").exists()


def test_conformers_file_must_hold_the_same_atoms(tmp_path):
    ase.io.write(tmp_path / "in.xyz", WATER)
    ase.io.write(tmp_path / "others.xyz", [WATER, molecule("H2O2")])
    code, _, err = run_cli("sample", tmp_path / "in.xyz", "-o", tmp_path / "out.xyz", *FAST,
                           "--conformers", tmp_path / "others.xyz")
    assert code == 1 and "others.xyz frame 1" in err and "same order" in err


def test_help_states_the_units():
    code, out, _ = run_cli("sample", "--help")
    assert code == 0 and "(K)" in out and "eV/Å" in out and "Å" in out



def test_conformers_in_worker_processes_give_the_same_samples(tmp_path, capfd):
    peroxide = molecule("H2O2")
    ase.io.write(tmp_path / "h2o2.xyz", peroxide)
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"workers{workers}.xyz"
        code, _, err = run_cli("sample", tmp_path / "h2o2.xyz", "-o", out, "--n-samples", 6,
                               "--dihedral", "2,0,1,3=0", "--dihedral", "2,0,1,3=180",
                               "--workers", workers, "--threads", 1,
                               "--cache-dir", tmp_path / f"cache{workers}",
                               *[a for a in FAST if a != "--no-progress"])
        assert code == 0, err
        outputs.append(ase.io.read(out, ":"))
        # every conformer was optimised and its Hessian cached by whichever process ran it
        assert len(list((tmp_path / f"cache{workers}").glob("modes-*.json"))) == 3
    one, two = outputs
    assert [f.info["conformer"] for f in one] == [f.info["conformer"] for f in two]
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
    # the worker processes' optimiser tables reach stderr, each line marked with its conformer
    table = [line for line in capfd.readouterr().err.splitlines() if "BFGS:" in line]
    assert table and all(line.startswith("conformer ") for line in table)



def test_a_second_run_waits_for_the_conformer_another_is_optimising(tmp_path, monkeypatch):
    real, computing, calls = normal_modes.compute_normal_modes, threading.Event(), []

    def counted(*args, **kwargs):
        calls.append(1)
        computing.set()  # the first run holds the conformer's lock from here on
        return real(*args, **kwargs)

    monkeypatch.setattr(normal_modes, "compute_normal_modes", counted)
    results: list = [None, None]
    logs: list[list[str]] = [[], []]

    def run(k: int) -> None:
        results[k] = normal_modes.cached_normal_modes(WATER, FAST_LEVEL, 1e-3, tmp_path,
                                                      threads=1, log=logs[k].append)

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert computing.wait(60)
    second = threading.Thread(target=run, args=(1,))
    second.start()
    first.join()
    second.join()
    assert len(calls) == 1  # the optimisation and Hessian ran once
    assert any("waiting for it" in line for line in logs[1])
    assert any("reusing" in line for line in logs[1])
    (one, path_one), (two, path_two) = results
    assert path_one == path_two
    np.testing.assert_array_equal(one.hessian, two.hessian)


def test_an_unfinished_optimisation_resumes_with_a_looser_fmax(tmp_path):
    start = WATER.copy()
    start.positions[1] += [0.0, 0.08, 0.05]
    # a run at fmax 1e-4 that ran out of steps leaves its checkpoint, named by start and level
    checkpoint = tmp_path / f"optimisation-{normal_modes.cache_key(start, FAST_LEVEL, None)}.npz"
    with pytest.raises(DenSNetError, match="did not converge"):
        optimise(start, PySCFCalculator(FAST_LEVEL, threads=1), fmax=1e-4, steps=3,
                 checkpoint=checkpoint)
    with np.load(checkpoint) as f:
        assert len(f["positions"]) == 4
    log: list[str] = []
    _, path = normal_modes.cached_normal_modes(start, FAST_LEVEL, 5e-3, tmp_path, threads=1,
                                               log=log.append)
    assert any(line.startswith("resuming the optimisation from") for line in log), log
    assert not checkpoint.exists() and path is not None and path.is_file()


def test_the_translational_sum_rule_repairs_a_coarse_grid_analytic_hessian():
    # PySCF's analytic Hessian leaves out the grid response; on a coarse grid with sulfur that
    # breaks translational invariance badly.  Methanethiol at STO-3G (any geometry will do:
    # the same geometry on both grids).
    thiol = molecule("CH3SH")
    level = {g: LevelOfTheory(basis="sto-3g", grid_level=g, conv_tol=1e-9) for g in (1, 4)}
    raw = {g: normal_modes.dft_hessian(thiol, level[g], threads=1)[1] for g in (1, 4)}

    def frequencies(hessian):
        return modes_from_hessian(thiol.numbers, thiol.positions, thiol.get_masses(),
                                  hessian).frequencies_cm1

    fixed, violation = normal_modes.impose_translational_sum_rule(raw[1])
    assert violation > 10.0  # eV/Å²: the coarse grid's on-atom blocks are far off
    n = len(thiol)
    # zero up to the asymmetric part of the off-atom sums, which symmetrising leaves (~1e-3)
    np.testing.assert_allclose(fixed.reshape(n, 3, n, 3).sum(axis=2), 0.0, atol=5e-3)
    np.testing.assert_allclose(fixed, fixed.T, atol=1e-12)
    reference = frequencies(normal_modes.impose_translational_sum_rule(raw[4])[0])
    assert np.abs(frequencies(raw[1]) - reference).max() > 20.0  # cm⁻¹, uncorrected
    assert np.abs(frequencies(fixed) - reference).max() < 2.0  # cm⁻¹, corrected


def test_a_cached_analytic_hessian_from_before_the_sum_rule_is_corrected_on_reading(tmp_path):
    modes, hessian = spring_modes(k=20.0)
    broken = hessian + np.diag(np.linspace(0.5, 2.0, len(hessian)))  # on-atom blocks off
    old = modes_from_hessian(modes.numbers, modes.positions, modes.masses, broken, energy=-1.0)
    atoms = Atoms(numbers=modes.numbers, positions=modes.positions, masses=modes.masses)
    path = tmp_path / f"modes-{normal_modes.cache_key(atoms, FAST_LEVEL, 1e-3)}.json"
    data = old.to_dict()
    del data["sum_rule_violation"]  # the format written before the correction existed
    path.write_text(json.dumps(data))
    log: list[str] = []
    read, _ = normal_modes.cached_normal_modes(atoms, FAST_LEVEL, 1e-3, tmp_path, log=log.append)
    assert any("sum rule imposed on the cached" in line for line in log)
    assert read.sum_rule_violation == pytest.approx(2.0)
    np.testing.assert_allclose(read.frequencies_cm1, modes.frequencies_cm1, atol=1e-6)
    assert NormalModes.load(path).sum_rule_violation == pytest.approx(2.0)  # kept
