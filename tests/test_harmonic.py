"""Harmonic analysis: closed-form toy spectra, PySCF's analytic Hessian, ASE's IR intensities."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.vibrations import Infrared
from scipy.integrate import trapezoid
from scipy.spatial.transform import Rotation

from densnet_cli import units
from densnet_cli.analysis.comparison import (
    Band,
    ComparisonReport,
    compare_modes,
    lorentzian_spectrum,
    write_comparison,
)
from densnet_cli.analysis.harmonic import (
    HarmonicResult,
    PySCFCalculator,
    dipole_derivatives,
    harmonic_analysis,
    harmonic_from_hessian,
    optimise,
    rigid_motion_basis,
)
from densnet_cli.errors import DenSNetError, InputError
from densnet_cli.reference.dft import LevelOfTheory, build_molecule, make_scf, scf_dipole
from tests.conftest import WATER

ROOT = Path(__file__).resolve().parents[1]
FAST = LevelOfTheory(basis="sto-3g", grid_level=1, conv_tol=1e-9)

# CODATA 2018, written out so that the closed forms do not share constants with the code.
EV_J, AMU_KG, C_CM_S, N_A = 1.602176634e-19, 1.66053906660e-27, 2.99792458e10, 6.02214076e23
E_ESU, AMU_G = 4.80320471e-10, 1.66053906660e-24  # statC, g


class SpringsAndCharges(Calculator):
    """Harmonic springs between all pairs of atoms and fixed point charges.

    E = Σ_{i<j} k_ij (r_ij − r0_ij)² / 2 with r0 the distances of ``rest`` (so ``rest`` is the
    minimum), μ = Σ q_i r_i.
    """

    implemented_properties = ["energy", "forces", "dipole"]  # noqa: RUF012

    def __init__(self, rest: np.ndarray, k: float | np.ndarray, charges: np.ndarray) -> None:
        super().__init__()
        self.pairs = np.triu_indices(len(rest), 1)
        i, j = self.pairs
        self.r0 = np.linalg.norm(rest[j] - rest[i], axis=1)
        self.k = np.broadcast_to(k, self.r0.shape)
        self.charges = np.asarray(charges, dtype=float)

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x = self.atoms.positions
        i, j = self.pairs
        d = x[j] - x[i]
        r = np.linalg.norm(d, axis=1)
        grad_j = (self.k * (r - self.r0) / r)[:, None] * d  # ∂E/∂x_j of each spring
        forces = np.zeros_like(x)
        np.add.at(forces, j, -grad_j)
        np.add.at(forces, i, grad_j)
        self.results = {"energy": float(0.5 * (self.k * (r - self.r0) ** 2).sum()),
                        "forces": forces, "dipole": self.charges @ x}


class OneByOne(Calculator):
    """Wraps a calculator so that harmonic_analysis evaluates its geometries one at a time."""

    implemented_properties = ["energy", "forces", "dipole"]  # noqa: RUF012

    def __init__(self, inner: Calculator) -> None:
        super().__init__()
        self.inner = inner

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.inner.calculate(self.atoms, properties, system_changes)
        self.results = dict(self.inner.results)


METHANOL = np.array([[-0.0467, 0.6634, 0.0000], [-0.0467, -0.7572, 0.0000],
                     [-1.0861, 0.9741, 0.0000], [0.4382, 1.0756, 0.8869],
                     [0.4382, 1.0756, -0.8869], [0.8575, -1.0739, 0.0300]])  # Å, C O H H H H
METHANOL_ATOMS = Atoms("COHHHH", positions=METHANOL)
METHANOL_CHARGES = np.array([-0.2, -0.6, 0.4, 0.1, 0.1, 0.2])  # neutral


def toy_methanol(seed: int = 0, spread: float = 0.0) -> SpringsAndCharges:
    """Springs of 10–40 eV/Å² (no symmetry, so no degenerate modes), × (1 ± spread)."""
    rng = np.random.default_rng(seed)
    k = rng.uniform(10.0, 40.0, 15) * (1.0 + spread * rng.uniform(-1, 1, 15))
    return SpringsAndCharges(METHANOL, k, METHANOL_CHARGES)


@pytest.fixture(scope="module")
def toy_result() -> HarmonicResult:
    return harmonic_analysis(METHANOL_ATOMS, toy_methanol(), progress=False)


def test_diatomic_frequency_and_intensity_are_the_closed_forms():
    """ν̃ = √(k/m_red) / 2πc; μ = q r, so ∂μ/∂Q = q/√m_red and I = N_A π q² / (3 c² m_red)."""
    k, q = 118.0, 0.3  # eV/Å², e
    atoms = Atoms("CO", positions=[[0.0, 0.0, 0.0], [0.1, 0.2, 1.128]])
    result = harmonic_analysis(atoms, SpringsAndCharges(atoms.positions, k, [-q, q]),
                               progress=False)
    m1, m2 = atoms.get_masses()
    m_red = m1 * m2 / (m1 + m2)
    nu = np.sqrt(k * EV_J * 1e20 / (m_red * AMU_KG)) / (2 * np.pi * C_CM_S)
    intensity = N_A * np.pi / (3 * C_CM_S**2) * (q * E_ESU) ** 2 / (m_red * AMU_G) * 1e-5
    assert result.rigid_cm1.shape == (5,)  # linear: 3 translations, 2 rotations
    np.testing.assert_allclose(result.frequencies_cm1, [nu], rtol=1e-6)
    np.testing.assert_allclose(result.intensities_km_mol, [intensity], rtol=1e-6)


def test_modes_are_orthonormal_and_free_of_rigid_motion(toy_result):
    modes = toy_result.modes.reshape(len(toy_result.modes), -1)
    np.testing.assert_allclose(modes @ modes.T, np.eye(12), atol=1e-12)
    rigid = rigid_motion_basis(toy_result.positions, toy_result.masses)
    assert rigid.shape == (18, 6)
    np.testing.assert_allclose(modes @ rigid, 0.0, atol=1e-12)


def test_frequencies_and_intensities_agree_with_ase_infrared(toy_result, tmp_path):
    """ASE diagonalises without removing rigid motions; at a minimum they stay near zero."""
    atoms = METHANOL_ATOMS.copy()
    atoms.calc = toy_methanol()
    ir = Infrared(atoms, name=str(tmp_path / "ir"), delta=toy_result.delta)
    ir.run()
    frequencies = ir.get_frequencies()
    vibrations = np.argsort(np.abs(frequencies))[6:]
    vibrations = vibrations[np.argsort(frequencies[vibrations].real)]
    assert np.abs(frequencies[np.argsort(np.abs(frequencies))[:6]]).max() < 10.0
    np.testing.assert_allclose(frequencies[vibrations].real, toy_result.frequencies_cm1,
                               rtol=1e-6)
    # ASE's km/mol factor (Porezag 1996) is ours to 2.5e-5; atol: ASE's modes mix slightly
    # with the rigid motions it leaves in (its finite differences are not exactly invariant).
    ase_km_mol = 42.255 * ir.intensities[vibrations]
    np.testing.assert_allclose(toy_result.intensities_km_mol, ase_km_mol, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def water() -> tuple[Atoms, HarmonicResult]:
    calc = PySCFCalculator(FAST, threads=1)
    geometry = optimise(WATER, calc)
    return geometry, harmonic_analysis(geometry, calc, progress=False)


def test_water_frequencies_match_pyscf_analytic_hessian(water):
    """Same density-fitted SCF (make_scf), analytic Hessian, PySCF's own normal-mode analysis.

    Neither PySCF's gradient nor its Hessian includes the response of the integration grid,
    so on grid level 1 they differ slightly; measured 0.1–0.6 cm⁻¹.
    """
    from pyscf.hessian import thermo

    geometry, fd = water
    mol = build_molecule(geometry.numbers, units.angstrom_to_bohr(geometry.positions), FAST)
    mf = make_scf(mol, FAST)
    mf.kernel()
    analytic = thermo.harmonic_analysis(mol, mf.Hessian().kernel(), imaginary_freq=False,
                                        mass=geometry.get_masses())
    assert fd.frequencies_cm1.shape == (3,) and fd.rigid_cm1.shape == (6,)
    np.testing.assert_allclose(fd.frequencies_cm1, np.sort(analytic["freq_wavenumber"]),
                               atol=2.0)


def test_analytic_hessian_with_dipole_differences_equals_the_full_analysis(water, tmp_path):
    """The path for molecules whose gradients are dear: PySCF's analytic Hessian (translational
    sum rule imposed) plus 2·3n SCF dipoles, no forces, gives the finite-difference analysis's
    frequencies and intensities; the dipole checkpoint resumes an interrupted run."""
    from densnet_cli.sampling.normal_modes import dft_hessian, impose_translational_sum_rule

    geometry, fd = water
    _, hessian = dft_hessian(geometry, FAST, threads=1)
    hessian, _ = impose_translational_sum_rule(hessian)
    calls = []

    def dipole_of(positions: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt  # as if killed during the 7th SCF
        return units.dipole_au_to_e_angstrom(
            scf_dipole(geometry.numbers, units.angstrom_to_bohr(positions), FAST))

    checkpoint = tmp_path / "dipoles.npz"
    with pytest.raises(KeyboardInterrupt):
        dipole_derivatives(geometry, dipole_of, checkpoint=checkpoint, progress=False)
    dmu_dx = dipole_derivatives(geometry, dipole_of, checkpoint=checkpoint, progress=False)
    assert len(calls) == 7 + 18 - 6  # the six finished dipoles were not recomputed
    np.testing.assert_allclose(dmu_dx, fd.dipole_derivatives, atol=1e-6)

    result = harmonic_from_hessian(geometry, hessian, dmu_dx, fd.residual_force, fd.delta)
    np.testing.assert_allclose(result.frequencies_cm1, fd.frequencies_cm1, atol=2.0)
    np.testing.assert_allclose(result.intensities_km_mol, fd.intensities_km_mol, rtol=0.02)

    moved = geometry.copy()
    moved.positions[0, 0] += 0.01
    with pytest.raises(InputError, match="belongs to another geometry"):
        dipole_derivatives(moved, dipole_of, checkpoint=checkpoint, progress=False)


def test_water_optimisation_reaches_a_minimum_up_to_grid_noise(water):
    """Only the net force and torque of the coarse grid remain (removed by the projection)."""
    geometry, fd = water
    forces = PySCFCalculator(FAST).get_forces(geometry)
    basis = rigid_motion_basis(geometry.positions, np.ones(3))
    internal = forces.ravel() - basis @ (basis.T @ forces.ravel())
    assert np.abs(internal).max() < 1e-4
    assert np.all(fd.frequencies_cm1 > 0)
    assert np.abs(fd.rigid_cm1).max() < 0.05 * fd.frequencies_cm1.min()


def test_optimise_reports_non_convergence():
    atoms = METHANOL_ATOMS.copy()
    atoms.positions += np.random.default_rng(1).normal(0.0, 0.05, atoms.positions.shape)
    with pytest.raises(DenSNetError, match="did not converge in 2 steps"):
        optimise(atoms, toy_methanol(), steps=2)


class Interrupting(Calculator):
    """Counts force calls; raises KeyboardInterrupt at call ``stop`` (a job killed mid-way)."""

    implemented_properties = ["energy", "forces"]  # noqa: RUF012

    def __init__(self, inner: Calculator, stop: int | None = None) -> None:
        super().__init__()
        self.inner, self.stop, self.calls = inner, stop, 0

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        self.inner.calculate(self.atoms, properties, system_changes)
        self.results = dict(self.inner.results)


def test_an_interrupted_optimisation_resumes_where_it_stopped(tmp_path):
    start = METHANOL_ATOMS.copy()
    start.positions += np.random.default_rng(2).normal(0.0, 0.15, start.positions.shape)
    plain = Interrupting(toy_methanol())
    reference = optimise(start, plain, fmax=1e-6)
    assert plain.calls > 15
    checkpoint = tmp_path / "optimisation.npz"
    with pytest.raises(KeyboardInterrupt):
        optimise(start, Interrupting(toy_methanol(), stop=9), fmax=1e-6, checkpoint=checkpoint)
    with np.load(checkpoint) as f:
        assert len(f["positions"]) == len(f["forces"]) == 8
    resumed_calc = Interrupting(toy_methanol())
    resumed = optimise(start, resumed_calc, fmax=1e-6, checkpoint=checkpoint)
    # the BFGS Hessian is rebuilt from the history: the same path, one repeated force call
    assert resumed_calc.calls == plain.calls - 8 + 1
    np.testing.assert_allclose(resumed.positions, reference.positions, rtol=0, atol=1e-12)


def test_an_optimisation_checkpoint_of_another_molecule_is_refused(tmp_path):
    checkpoint = tmp_path / "optimisation.npz"
    start = METHANOL_ATOMS.copy()
    start.positions += np.random.default_rng(2).normal(0.0, 0.15, start.positions.shape)
    with pytest.raises(KeyboardInterrupt):
        optimise(start, Interrupting(toy_methanol(), stop=3), checkpoint=checkpoint)
    with pytest.raises(InputError, match="holds another molecule"):
        optimise(WATER, Interrupting(toy_methanol()), checkpoint=checkpoint)


def test_model_batches_equal_one_geometry_at_a_time():
    from densnet_cli.calculator import DenSNetCalculator

    atoms = ase.io.read(ROOT / "examples/ethanol/ethanol_rmd17_100.xyz", index=0)
    calc = DenSNetCalculator(ROOT / "examples/ethanol/model/ethanol_100.pt", device="cpu")
    batched = harmonic_analysis(atoms, calc, batch_size=16, progress=False)
    single = harmonic_analysis(atoms, OneByOne(calc), progress=False)
    np.testing.assert_allclose(batched.hessian, single.hessian, atol=1e-8)
    np.testing.assert_allclose(batched.dipole_derivatives, single.dipole_derivatives,
                               atol=1e-10)


def test_compare_modes_undoes_permutation_rotation_and_sign(toy_result):
    rng = np.random.default_rng(2)
    m = len(toy_result.modes)
    order, signs = rng.permutation(m), rng.choice([-1.0, 1.0], m)
    rotation = Rotation.random(random_state=3).as_matrix()
    shift, scale = rng.uniform(-20, 20, m), rng.uniform(0.5, 2.0, m)
    moved = dataclasses.replace(
        toy_result, positions=toy_result.positions @ rotation.T + [1.0, -2.0, 0.5],
        modes=(signs[:, None, None] * toy_result.modes @ rotation.T)[order],
        frequencies_cm1=(toy_result.frequencies_cm1 + shift)[order],
        intensities_km_mol=(toy_result.intensities_km_mol * scale)[order])
    rows = compare_modes(moved, toy_result)
    assert [r["mode"] for r in rows] == list(range(1, m + 1))
    np.testing.assert_allclose([r["difference_cm1"] for r in rows], shift, atol=1e-9)
    np.testing.assert_allclose([r["intensity_ratio"] for r in rows], scale, rtol=1e-9)
    np.testing.assert_allclose([r["overlap"] for r in rows], 1.0, atol=1e-9)


def test_compare_modes_pairs_a_perturbed_molecule_mode_by_mode(toy_result):
    """Springs changed by ≤ 3 %: every mode pairs with its own perturbed image."""
    perturbed = harmonic_analysis(METHANOL_ATOMS, toy_methanol(spread=0.03), progress=False)
    rows = compare_modes(perturbed, toy_result)
    np.testing.assert_allclose([r["model_cm1"] for r in rows], perturbed.frequencies_cm1)
    assert min(r["overlap"] for r in rows) > 0.9
    assert max(abs(r["difference_cm1"]) for r in rows) < 0.03 * toy_result.frequencies_cm1.max()


def test_compare_modes_rejects_different_atoms(toy_result):
    swapped = dataclasses.replace(toy_result, numbers=toy_result.numbers[::-1])
    with pytest.raises(InputError, match="different molecules"):
        compare_modes(swapped, toy_result)


def test_lorentzian_lines_keep_their_intensity():
    nu = np.linspace(-5000.0, 10000.0, 300001)
    spectrum = lorentzian_spectrum(nu, np.array([1000.0, 3000.0]), np.array([10.0, 30.0]))
    assert trapezoid(spectrum, nu) == pytest.approx(40.0, rel=1e-3)


def test_write_comparison_writes_table_json_and_plot(toy_result, tmp_path):
    perturbed = harmonic_analysis(METHANOL_ATOMS, toy_methanol(spread=0.03), progress=False)
    prefix = tmp_path / "report"
    summary = write_comparison(prefix, ComparisonReport(
        model=perturbed, reference=toy_result, names=("toy", "reference"),
        experiment=[Band(1000.0, "a band")], experiment_source="nowhere",
        metadata={"note": "test"}))
    document = json.loads(prefix.with_suffix(".json").read_text())
    assert document["summary"] == pytest.approx(summary)
    assert len(document["modes"]) == 12 and len(document["model"]["frequencies_cm1"]) == 12
    table = prefix.with_suffix(".md").read_text()
    assert "| 12 |" in table and "a band" in table
    assert prefix.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_harmonic_result_round_trips_through_json():
    rng = np.random.default_rng(0)
    original = HarmonicResult(
        numbers=np.array([8, 1, 1]), positions=rng.normal(size=(3, 3)), masses=np.ones(3),
        hessian=rng.normal(size=(9, 9)), dipole_derivatives=rng.normal(size=(9, 3)),
        frequencies_cm1=np.array([1600.0, 3700.0, 3800.0]), modes=rng.normal(size=(3, 3, 3)),
        dmu_dq=rng.normal(size=(3, 3)), intensities_km_mol=np.ones(3), rigid_cm1=np.zeros(6),
        residual_force=1e-4, delta=0.005)
    back = HarmonicResult.from_dict(json.loads(json.dumps(original.to_dict())))
    for key, value in original.__dict__.items():
        np.testing.assert_array_equal(getattr(back, key), value)
