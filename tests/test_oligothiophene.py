"""Oligothiophene chains: formulas, bonds, conformations, monomer transfer, model locality, CLI."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers, covalent_radii
from scipy.optimize import brentq

from densnet_cli.basis.layout import BasisSet
from densnet_cli.errors import InputError
from densnet_cli.model.batch import collate
from densnet_cli.model.densnet import DenSNet, ModelConfig
from densnet_cli.reference.dft import LevelOfTheory
from densnet_cli.systems.oligothiophene import (
    build_chain,
    chain_bonds,
    chain_dihedrals,
    chain_sites,
    inter_ring_dihedral_indices,
    inter_ring_dihedrals,
)
from densnet_cli.systems.thiophene import LITERATURE, ThiopheneGeometry, optimised_monomer
from tests.conftest import FAST, jiggled, run_cli

TWISTED = [180.0, 160.0, -150.0, 30.0, 90.0]  # a 6-ring chain with every kind of turn


def bonds_by_distance(atoms: Atoms) -> set[tuple[int, int]]:
    """Pairs closer than 1.2 × the sum of covalent radii (independent of the builder)."""
    r = covalent_radii[atoms.numbers]
    d = atoms.get_all_distances()
    i, j = np.nonzero(np.triu(d < 1.2 * (r[:, None] + r[None, :]), k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def bond_kinds(atoms: Atoms) -> dict[str, list[float]]:
    """Bond lengths by kind: S–Cα, Cα=Cβ, Cβ–Cβ, Cα–H, Cβ–H, inter-ring Cα–Cα."""
    symbols, ring = atoms.get_chemical_symbols(), atoms.arrays["ring"]
    bonds = bonds_by_distance(atoms)
    alpha = {c for pair in bonds for c in pair if symbols[c] == "C"
             and any(symbols[o] == "S" for o in pair)}
    kinds: dict[str, list[float]] = {}
    for i, j in bonds:
        pair = "".join(sorted(symbols[i] + symbols[j]))
        if pair == "CC":
            kind = ("inter" if ring[i] != ring[j] else
                    {0: "CbCb", 1: "CaCb"}[len({i, j} & alpha)])
        elif pair == "CH":
            kind = "CaH" if (i in alpha or j in alpha) else "CbH"
        else:
            kind = pair
        kinds.setdefault(kind, []).append(atoms.get_distance(i, j))
    return kinds


def sulphur_sides(atoms: Atoms) -> np.ndarray:
    """+1/−1 per ring: which side of its own Cα→Cα′ line (about the chain's z) S lies on."""
    p = atoms.positions
    return np.array([np.sign(np.cross(p[s["C5"]] - p[s["C2"]], p[s["S"]] - p[s["C2"]])[2])
                     for s in chain_sites(int(atoms.info["n_rings"]))])


def angle_difference(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# --- geometry --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", range(1, 13))
def test_formula_and_bond_counts(n):
    atoms = build_chain(n)
    assert atoms.get_chemical_formula(mode="hill") == (
        f"C{4 * n}H{2 * n + 2}S" + (str(n) if n > 1 else ""))
    kinds = bond_kinds(atoms)
    counts = {kind: len(lengths) for kind, lengths in kinds.items()}
    expected = {"CS": 2 * n, "CaCb": 2 * n, "CbCb": n, "inter": n - 1,
                "CaH": 2, "CbH": 2 * n}
    assert counts == {k: v for k, v in expected.items() if v}
    assert sum(counts.values()) == 5 * n + (n - 1) + (2 * n + 2)
    assert bonds_by_distance(atoms) == {tuple(sorted(b)) for b in chain_bonds(n)}


@pytest.mark.parametrize(("dihedrals", "inter_ring_bond"), [
    (None, 1.45), (chain_dihedrals(6, "syn"), 1.45), (TWISTED, 1.45), (TWISTED, 1.48)])
def test_bond_lengths_and_angles_are_those_of_the_monomer(dihedrals, inter_ring_bond):
    atoms = build_chain(6, dihedrals, inter_ring_bond=inter_ring_bond)
    kinds = bond_kinds(atoms)
    expected = {"CS": LITERATURE.r_sc, "CaCb": LITERATURE.r_cacb, "CbCb": LITERATURE.r_cbcb,
                "CaH": LITERATURE.r_ch_alpha, "CbH": LITERATURE.r_ch_beta,
                "inter": inter_ring_bond}
    for kind, length in expected.items():
        np.testing.assert_allclose(kinds[kind], length, atol=1e-10, rtol=0, err_msg=kind)
    for s in chain_sites(6):
        assert atoms.get_angle(s["C2"], s["S"], s["C5"]) == pytest.approx(92.17, abs=1e-8)
    for s_prev, s_next in zip(chain_sites(6), chain_sites(6)[1:], strict=False):
        for a, b, c in [(s_prev["S"], s_prev["C5"], s_next["C2"]),
                        (s_next["S"], s_next["C2"], s_prev["C5"])]:
            assert atoms.get_angle(a, b, c) == pytest.approx(LITERATURE.angle_sch, abs=1e-8)


@pytest.mark.parametrize("n", range(1, 13))
def test_anti_chains_are_planar_centred_and_along_x(n):
    atoms = build_chain(n)
    assert np.abs(atoms.positions[:, 2]).max() < 1e-8
    np.testing.assert_allclose(atoms.positions.mean(axis=0), 0.0, atol=1e-12)
    sites = chain_sites(n)
    end_to_end = atoms.positions[sites[-1]["C5"]] - atoms.positions[sites[0]["C2"]]
    np.testing.assert_allclose(end_to_end[1:], 0.0, atol=1e-10)
    assert end_to_end[0] > 0
    if n > 1:
        alternating = np.array([(-1) ** k for k in range(n)])
        assert (sulphur_sides(atoms) == alternating * sulphur_sides(atoms)[0]).all()


def test_long_chains_stay_exact():
    """Rounding must not compound from ring to ring (it once made ring 500's bond 1.34 Å)."""
    n = 1000
    atoms = build_chain(n)
    i, j = np.array(chain_bonds(n)).T
    lengths = np.linalg.norm(atoms.positions[i] - atoms.positions[j], axis=1)
    inter = atoms.arrays["ring"][i] != atoms.arrays["ring"][j]
    np.testing.assert_allclose(lengths[inter], 1.45, atol=1e-10, rtol=0)
    sulphur = atoms.numbers[i] == 16
    np.testing.assert_allclose(lengths[sulphur], LITERATURE.r_sc, atol=1e-10, rtol=0)
    assert np.abs(atoms.positions[:, 2]).max() < 1e-8


def test_syn_chains_keep_sulphur_on_one_side_and_curl_into_a_clash():
    for n in range(2, 11):
        atoms = build_chain(n, chain_dihedrals(n, "syn"))
        assert np.abs(atoms.positions[:, 2]).max() < 1e-8
        assert (sulphur_sides(atoms) == sulphur_sides(atoms)[0]).all()
    with pytest.raises(InputError, match="overlap itself"):  # 32.5° per ring: a circle of 11.1
        build_chain(11, chain_dihedrals(11, "syn"))


def test_dihedral_list_is_honoured():
    atoms = build_chain(6, TWISTED)
    measured = [atoms.get_dihedral(*q) for q in inter_ring_dihedral_indices(6)]
    assert [atoms[i].symbol for q in inter_ring_dihedral_indices(6) for i in q] == list("SCCS") * 5
    for got, want in zip(measured, TWISTED, strict=True):
        assert angle_difference(got, want) < 1e-8
    assert np.abs(atoms.positions[:, 2]).max() > 1.0  # really twisted out of the plane
    assert build_chain(6, TWISTED).positions.tobytes() == atoms.positions.tobytes()  # same bits


def test_inter_ring_dihedrals_agree_with_ase_for_stacked_frames():
    rng = np.random.default_rng(0)
    frames = [build_chain(4, [d, -40.0, 100.0]) for d in (180.0, 30.0, -150.0)]
    for atoms in frames:
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    stacked = np.stack([a.positions for a in frames]).reshape(3, 1, -1, 3)  # (B, F, n, 3)
    got = inter_ring_dihedrals(stacked, 4)
    assert got.shape == (3, 1, 3)
    want = [[a.get_dihedral(*q) for q in inter_ring_dihedral_indices(4)] for a in frames]
    for g, w in zip(got[:, 0].ravel(), np.ravel(want), strict=True):
        assert angle_difference(g, w) < 1e-8
    assert angle_difference(got[1, 0, 0], 30.0) < 10 and got[1, 0, 1] < 0  # sign kept


@pytest.mark.parametrize(("n", "dihedrals", "message"), [
    (0, None, "at least one ring"),
    (3, [180.0], "has 2 inter-ring dihedrals, got 1"),
    (2, [float("nan")], "inter-ring dihedrals"),
])
def test_bad_chain_requests_raise(n, dihedrals, message):
    with pytest.raises(InputError, match=message):
        build_chain(n, dihedrals)


# --- the monomer -----------------------------------------------------------------------------

def moved(atoms: Atoms, seed: int = 0) -> Atoms:
    """A rigidly rotated, translated and permuted copy."""
    rng = np.random.default_rng(seed)
    out = atoms[rng.permutation(len(atoms))]
    out.rotate(rng.uniform(0, 360), rng.normal(size=3), center=(0, 0, 0))
    out.positions += rng.normal(size=3) * 5
    return out


def test_monomer_geometry_round_trips():
    perturbed = ThiopheneGeometry(1.75, 1.39, 1.44, 91.0, 1.09, 1.085, 121.0, 123.0)
    measured = ThiopheneGeometry.from_atoms(moved(build_chain(1, monomer=perturbed)))
    for key, value in perturbed.as_dict().items():
        assert getattr(measured, key) == pytest.approx(value, abs=1e-9), key


def test_monomer_bond_lengths_go_into_every_ring():
    scaled = build_chain(1)
    scaled.positions *= 1.02  # all bonds 2 % longer, all angles kept
    kinds = bond_kinds(build_chain(4, monomer=moved(scaled), inter_ring_bond=1.46))
    for kind, length in {"CS": LITERATURE.r_sc, "CaCb": LITERATURE.r_cacb,
                         "CbCb": LITERATURE.r_cbcb, "CaH": LITERATURE.r_ch_alpha,
                         "CbH": LITERATURE.r_ch_beta}.items():
        np.testing.assert_allclose(kinds[kind], 1.02 * length, atol=1e-10, rtol=0)
    np.testing.assert_allclose(kinds["inter"], 1.46, atol=1e-10, rtol=0)


def test_a_monomer_that_is_not_thiophene_is_rejected():
    with pytest.raises(InputError, match="C4H4S"):
        build_chain(2, monomer=Atoms("OH2", positions=[[0, 0, 0], [0, 0.76, 0.6], [0, -.76, .6]]))
    bent = build_chain(1)
    bent.positions[5] += [0.0, 0.1, 0.0]  # one α H moved: no longer C2v
    with pytest.raises(InputError, match="not C2v"):
        build_chain(2, monomer=bent)


class _Springs(Calculator):
    """Harmonic springs between all pairs, rest lengths those of ``target``: its minimum."""

    implemented_properties = ["energy", "forces"]  # noqa: RUF012

    def __init__(self, target: Atoms):
        super().__init__()
        self.rest = target.get_all_distances()
        self.calls = 0

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        p = self.atoms.positions
        diff = p[:, None] - p[None]
        d = np.linalg.norm(diff, axis=-1) + np.eye(len(p))
        stretch = d - self.rest - np.eye(len(p))
        self.results = {"energy": 0.25 * 10 * float((stretch**2).sum()),
                        "forces": -10 * ((stretch / d)[..., None] * diff).sum(axis=1)}


def test_optimised_monomer_runs_the_optimiser_and_caches(tmp_path, monkeypatch):
    target = ThiopheneGeometry(r_sc=1.73, r_cacb=1.38, r_cbcb=1.43, angle_csc=91.5)
    springs = _Springs(build_chain(1, monomer=target))
    monkeypatch.setattr("densnet_cli.analysis.harmonic.PySCFCalculator",
                        lambda level, threads: springs)
    cache, level = tmp_path / "thiophene.monomer.json", LevelOfTheory(basis="sto-3g")
    result = ThiopheneGeometry.from_atoms(optimised_monomer(level, cache, fmax=1e-5))
    for key in ("r_sc", "r_cacb", "r_cbcb", "angle_csc"):
        assert getattr(result, key) == pytest.approx(getattr(target, key), abs=1e-5), key
    calls = springs.calls
    assert calls > 1 and cache.is_file()
    again = optimised_monomer(level, cache, fmax=1e-5)
    assert springs.calls == calls and ThiopheneGeometry.from_atoms(again) == result
    optimised_monomer(LevelOfTheory(basis="def2-SVP"), cache, fmax=1e-5)
    assert springs.calls > calls  # another level of theory is not taken from the cache


# --- locality of a DenSNet model -------------------------------------------------------------

SMALL = dict(density_features=8, density_layers=2, energy_features=8, energy_layers=1,
             radial_hidden=16, lmax_edge=2)


def random_model(charge_flow: bool) -> DenSNet:
    basis = BasisSet.from_pyscf("def2-universal-jkfit", ["H", "C", "S"], "def2-SVP")
    sad = {s: atomic_numbers[s] * e.charges / (e.charges @ e.charges)  # ∫ρ_SAD = Z
           for s, e in basis.elements.items()}
    torch.manual_seed(0)
    net = DenSNet(basis, sad, ModelConfig(**SMALL, charge_flow=charge_flow)).double().eval()
    with torch.no_grad():  # random heads: the density really depends on the geometry
        for head in net.density.heads.values():
            head.weight.normal_()
        if net.density.flow is not None:
            net.density.flow.mlp[-1].weight.normal_()
    return net


@pytest.fixture(scope="module", params=[False, True], ids=["fragment-projection", "charge-flow"])
def model(request):
    return random_model(request.param)


def predict(model, atoms: Atoms) -> dict[str, torch.Tensor]:
    batch = collate(model.basis, [(atoms.numbers, atoms.positions)])
    return {k: v.detach() for k, v in model(batch).items()}


def pair_at_gap(a: Atoms, b: Atoms, gap: float) -> Atoms:
    """``a`` + ``b`` (turned) shifted along x until their closest atoms are ``gap`` Å apart."""
    b = b.copy()
    b.rotate(70, "z")

    def closest(t: float) -> float:
        shifted = b.positions + np.array([t, 0.0, 0.0])
        return float(np.linalg.norm(a.positions[:, None] - shifted[None], axis=-1).min()) - gap

    b.positions += [brentq(closest, 3.0, 80.0, xtol=1e-12), 0, 0]
    return a + b


def assert_additive(model, a: Atoms, b: Atoms, gap: float) -> None:
    both = pair_at_gap(a, b, gap)
    pa, pb, pab = predict(model, a), predict(model, both[len(a):]), predict(model, both)
    assert abs(float(pab["energy"] - pa["energy"] - pb["energy"])) < 1e-8
    torch.testing.assert_close(pab["forces"], torch.cat([pa["forces"], pb["forces"]]),
                               atol=1e-8, rtol=0)
    torch.testing.assert_close(pab["dipole"], pa["dipole"] + pb["dipole"], atol=1e-8, rtol=0)
    assert abs(float(pab["populations"].sum()) - both.numbers.sum()) < 1e-10
    assert abs(float(pab["populations"][:len(a)].sum()) - a.numbers.sum()) < 1e-10


@pytest.mark.parametrize("gap", [50.0, 4.01])  # far apart; just beyond the 4 Å cutoff
def test_model_energy_of_separated_thiophenes_is_the_sum(model, gap):
    assert_additive(model, build_chain(1), build_chain(1), gap)


def test_model_energy_changes_within_the_cutoff(model):
    a = build_chain(1)
    e_sum = 2 * float(predict(model, a)["energy"])
    assert abs(float(predict(model, pair_at_gap(a, a, 3.9))["energy"]) - e_sum) > 1e-7


def test_model_is_additive_for_unlike_fragments(model):
    """∫ρ = N is imposed per fragment, so no charge moves between distant unlike fragments."""
    assert_additive(model, build_chain(1), build_chain(2, [150.0]), 50.0)


def end_hydrogen_dipole_response(net: DenSNet, n: int
                                 ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """For the first ring's outer α-hydrogen of an anti ``n``-ring chain: ∂μ/∂R (3 × 3, e),
    the change of every atom's population when it moves 0.01 Å along x, and every atom's
    distance from it (Å)."""
    chain = build_chain(n)
    hydrogens = np.flatnonzero(chain.numbers == 1)
    h = int(hydrogens[np.argmin(chain.positions[hydrogens, 0])])
    batch = collate(net.basis, [(chain.numbers, chain.positions)])
    batch.positions.requires_grad_(True)
    out = net(batch, forces=False, energy=False)
    rows = [torch.autograd.grad(out["dipole"][0, i], batch.positions, retain_graph=True)[0][h]
            for i in range(3)]
    moved = chain.positions.copy()
    moved[h, 0] += 0.01
    after = net(collate(net.basis, [(chain.numbers, moved)]), forces=False, energy=False)
    dpop = (after["populations"] - out["populations"]).detach()
    distance = np.linalg.norm(chain.positions - chain.positions[h], axis=1)
    return torch.stack(rows), dpop, distance


RECEPTIVE_FIELD = SMALL["density_layers"] * 4.0 + 4.0  # Å: message passing, then one flow


def test_charge_flow_keeps_the_dipole_response_local():
    """With local flows, moving an end hydrogen moves charge only within the receptive field,
    and its dipole derivative (its IR intensity) is the same in an 8- and a 12-ring chain (up
    to the chains' orientations, which differ: compared by singular values)."""
    net = random_model(charge_flow=True)
    d8, dpop, distance = end_hydrogen_dipole_response(net, 8)
    d12, _, _ = end_hydrogen_dipole_response(net, 12)
    assert dpop.abs().max() > 1e-3  # the response is there ...
    assert float(dpop[distance > RECEPTIVE_FIELD].abs().max()) == 0.0  # ... and local
    torch.testing.assert_close(torch.linalg.svdvals(d8), torch.linalg.svdvals(d12), atol=1e-10,
                               rtol=0)


def test_fragment_projection_spreads_the_response_over_the_chain():
    """Why charge flow exists: the fragment-wide projection moves charge to every atom, so
    the same hydrogen's dipole derivative changes with the chain's length."""
    net = random_model(charge_flow=False)
    d8, dpop, distance = end_hydrogen_dipole_response(net, 8)
    d12, _, _ = end_hydrogen_dipole_response(net, 12)
    assert float(dpop[distance > RECEPTIVE_FIELD].abs().min()) > 0.0
    assert float((torch.linalg.svdvals(d12) - torch.linalg.svdvals(d8)).abs().max()) > 1e-3


# --- the command -----------------------------------------------------------------------------

def test_cli_writes_a_chain(tmp_path):
    out = tmp_path / "chain.xyz"
    code, stdout, _ = run_cli("build-oligothiophene", 3, "-o", out, "--dihedrals", "170,-160")
    assert code == 0 and "C12H8S3" in stdout
    atoms = ase.io.read(out)
    assert atoms.get_chemical_formula(mode="hill") == "C12H8S3"
    assert atoms.arrays["ring"].tolist() == [0] * 8 + [1] * 7 + [2] * 8
    for q, want in zip(inter_ring_dihedral_indices(3), [170.0, -160.0], strict=True):
        assert angle_difference(atoms.get_dihedral(*q), want) < 1e-6
    assert not list(tmp_path.glob(".*tmp*"))


def test_cli_takes_the_monomer_from_a_file(tmp_path):
    scaled = build_chain(1)
    scaled.positions *= 0.99
    ase.io.write(tmp_path / "monomer.xyz", moved(scaled, seed=3))
    out = tmp_path / "chain.xyz"
    code, _, _ = run_cli("build-oligothiophene", 2, "-o", out, "--conformation", "syn",
                         "--monomer", tmp_path / "monomer.xyz")
    assert code == 0
    kinds = bond_kinds(ase.io.read(out))
    np.testing.assert_allclose(kinds["CS"], 0.99 * LITERATURE.r_sc, atol=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    (["0"], "N must be at least 1"),
    (["3", "--dihedrals", "180"], "has 2 inter-ring dihedrals; --dihedrals gives 1"),
    (["3", "--dihedrals", "180,x"], "comma-separated numbers"),
    (["3", "--conformation", "syn", "--dihedrals", "0,0"], "not both"),
    (["3", "--monomer", "missing.xyz"], "cannot read the monomer file"),
    (["3", "--monomer", "water.xyz"], "C4H4S, not H2O"),
    (["12", "--conformation", "syn"], "overlap itself"),
])
def test_cli_bad_input_is_one_clear_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    ase.io.write("water.xyz", Atoms("OH2", positions=[[0, 0, 0], [0, .76, .6], [0, -.76, .6]]))
    code, _, err = run_cli("build-oligothiophene", *args, "-o", "chain.xyz")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert message in lines[0]
    assert not (tmp_path / "chain.xyz").exists()


def test_cli_optimises_the_monomer_with_pyscf(tmp_path):
    """PBE/STO-3G (grid 1): bonds within 0.05 Å of the microwave structure (~20 s)."""
    out = tmp_path / "chain.xyz"
    args = ["build-oligothiophene", 2, "-o", out, "--optimise-monomer", "--fmax", "0.01", *FAST]
    code, stdout, _ = run_cli(*args)
    assert code == 0 and (tmp_path / "chain.monomer.json").is_file()
    kinds = bond_kinds(ase.io.read(out))
    for kind, length in {"CS": LITERATURE.r_sc, "CaCb": LITERATURE.r_cacb,
                         "CbCb": LITERATURE.r_cbcb, "CaH": LITERATURE.r_ch_alpha}.items():
        assert np.mean(kinds[kind]) == pytest.approx(length, abs=0.05), kind
    code, again, err = run_cli(*args[:-1], "--progress")
    assert code == 0 and "reusing" in err and again == stdout


# --- end to end: train on 1–2 rings, predict 3 ----------------------------------------------

@pytest.mark.slow
def test_a_model_trained_on_one_and_two_rings_extrapolates_to_three(tmp_path):
    """fit-density → train → evaluate on chains at a minimal basis: the local model's errors
    on the unseen 3-ring chain are of the size of its errors on held-out 2-ring chains."""
    sets = {"1T": (build_chain(1), 10, 0), "2T": (build_chain(2, [150.0]), 8, 1),
            "2T_test": (build_chain(2, [165.0]), 3, 2),
            "3T_test": (build_chain(3, [150.0, 165.0]), 3, 3)}
    for name, (chain, n, seed) in sets.items():
        ase.io.write(tmp_path / f"{name}.xyz", jiggled(chain, n, 0.04, seed), format="extxyz")
        code, _, err = run_cli("fit-density", tmp_path / f"{name}.xyz", "-o",
                               tmp_path / f"{name}.h5", *FAST, "--threads", "1")
        assert code == 0, err
    model = tmp_path / "chains.pt"
    code, _, err = run_cli("train", tmp_path / "1T.h5", tmp_path / "2T.h5", "-o", model,
                           "--density-features", "8", "--density-layers", "2",
                           "--energy-features", "8", "--energy-layers", "1",
                           "--radial-hidden", "16", "--lmax-edge", "2", "--val-fraction", "0.1",
                           "--batch-size", "4", "--epochs-density", "40",
                           "--epochs-energy", "120", "--no-progress")
    assert code == 0, err
    errors = {}
    for name in ("2T_test", "3T_test"):
        report = tmp_path / f"{name}.json"
        code, _, err = run_cli("evaluate", model, tmp_path / f"{name}.h5", "--report", report,
                               "--density-frames", "1", "--no-progress")
        assert code == 0, err
        errors[name] = json.loads(report.read_text())
    atoms = {"2T_test": 16, "3T_test": 23}
    per_atom = {k: v["energy_mae_meV"] / atoms[k] for k, v in errors.items()}
    print({k: (per_atom[k], v["force_mae_meV_per_A"], v["density_l1_percent"])
           for k, v in errors.items()})
    assert per_atom["3T_test"] < 2 * per_atom["2T_test"] + 5.0
    assert errors["3T_test"]["force_mae_meV_per_A"] < 1.5 * errors["2T_test"][
        "force_mae_meV_per_A"]
    assert errors["3T_test"]["density_l1_percent"] < 1.5 * errors["2T_test"][
        "density_l1_percent"]
