"""``densnet fit-density`` end to end: file layout, reruns, bad input, failed SCFs."""

import h5py
import numpy as np
import pytest

from densnet_cli import keys
from densnet_cli.data.hdf5 import DensityDataset
from tests.conftest import FAST, run_cli, run_densnet


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """4 water frames labelled once (fast level of theory), shared by the read-only tests."""
    import ase.io

    from tests.conftest import WATER, jiggled

    d = tmp_path_factory.mktemp("labelled")
    ase.io.write(d / "water.xyz", jiggled(WATER, 4), format="extxyz")
    code, out, err = run_cli("fit-density", d / "water.xyz", "-o", d / "water.h5", *FAST)
    assert code == 0, err
    return d / "water.xyz", d / "water.h5", out


def test_dataset_layout_units_and_metadata(labelled):
    _xyz, h5, out = labelled
    assert "wrote" in out and "4 frames" in out
    ds = DensityDataset(h5)
    assert len(ds) == 4
    assert [f.source_index for f in ds] == [0, 1, 2, 3]
    meta = ds.metadata
    assert meta["settings"]["level"]["basis"] == "sto-3g"
    assert meta["settings"]["density_basis"] == "def2-universal-jkfit"
    assert meta["units"]["energy"] == "eV" and meta["units"]["positions"] == "Angstrom"
    assert {"pyscf", "ase", "densnet", "h5py"} <= set(meta["versions"])
    assert len(meta["source"]["sha256"]) == 64
    frame = ds[2]
    n_coeff = ds.basis.atom_offsets(frame.numbers)[-1]
    assert frame.coefficients.shape == (n_coeff,)
    assert frame.forces.shape == (3, 3) and frame.dipole.shape == (3,)
    # Energy in eV (water at PBE/STO-3G is about -75.3 Hartree = -2049 eV).
    assert -2100 < frame.energy < -2000
    # Diagnostics are stored per frame and sensible.
    np.testing.assert_allclose(ds.per_frame(keys.FIT_N_ELECTRONS), 10.0, atol=1e-6)
    np.testing.assert_allclose(ds.per_frame(keys.FIT_DIPOLE), ds.per_frame(keys.DIPOLE),
                               atol=1e-9)
    assert np.all(ds.per_frame(keys.FIT_L1_PERCENT) < ds.per_frame(keys.SAD_L1_PERCENT))
    assert np.all(ds.per_frame(keys.FIT_RELATIVE_ERROR) < 0.01)
    prior = ds.sad_coefficients(frame.numbers)
    assert abs(ds.basis.charges(frame.numbers) @ prior - 10.0) < 1e-10
    atoms = ds.to_atoms(1)
    assert atoms.get_potential_energy() == ds[1].energy
    np.testing.assert_array_equal(atoms.get_dipole_moment(), ds[1].dipole)
    assert ds.failed == []


def test_dft_density_matrix_is_stored_and_reproduces_the_density(labelled):
    """The stored density matrix is the SCF's: trace(PS) = N and its dipole is the DFT dipole."""
    from densnet_cli import units
    from densnet_cli.reference.dft import LevelOfTheory, build_molecule

    _xyz, h5, _ = labelled
    ds = DensityDataset(h5)
    assert ds.has_density_matrices
    for i in (0, 3):
        frame = ds[i]
        mol = build_molecule(frame.numbers, units.angstrom_to_bohr(frame.positions),
                             LevelOfTheory(**ds.metadata["settings"]["level"]))
        dm = ds.density_matrix(i)
        np.testing.assert_allclose(dm, dm.T)
        assert abs(np.einsum("ij,ji", dm, mol.intor("int1e_ovlp")) - 10.0) < 1e-8
        electronic = np.einsum("xij,ji->x", mol.intor("int1e_r"), dm)
        dipole_au = mol.atom_charges() @ mol.atom_coords() - electronic
        np.testing.assert_allclose(units.dipole_au_to_e_angstrom(dipole_au), frame.dipole,
                                   atol=1e-8)


def test_rerun_of_a_complete_dataset_does_nothing(labelled):
    xyz, h5, _ = labelled
    before = h5.stat().st_mtime_ns
    code, out, _ = run_cli("fit-density", xyz, "-o", h5, *FAST)
    assert code == 0 and "already complete" in out
    assert h5.stat().st_mtime_ns == before


def test_existing_output_with_other_settings_is_refused(labelled):
    xyz, h5, _ = labelled
    before = h5.read_bytes()
    code, _, err = run_cli("fit-density", xyz, "-o", h5, *FAST, "--xc", "LDA")
    assert code == 1
    assert "different settings.level.xc" in err
    code, _, err = run_cli("fit-density", xyz, "-o", h5, *FAST, "--index", "0:2")
    assert code == 1 and "source.frames" in err
    assert h5.read_bytes() == before  # nothing lost


@pytest.mark.parametrize(("content", "extra", "message"), [
    (None, [], "does not exist"),
    ("this is not a geometry\n", [], "cannot read geometries"),
    ("2\n\nU 0 0 0\nH 0 0 1.8\n", [], "element U is not in the orbital basis"),
    ("2\n\nH 0 0 0\nH 0 0 0.2\n", [], "atoms 0 (H) and 1 (H) are 0.200 Å apart"),
    ("3\n\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76 0.58\n", ["--spin", "1"], "cannot have spin"),
    ("3\n\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76 0.58\n", ["--index", "3:x"], "--index '3:x'"),
    ("3\n\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76 0.58\n", ["--density-basis", "nope-jkfit"],
     "density basis 'nope-jkfit'"),
    ("3\n\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76 0.58\n", ["--xc", "nonsense"],
     "--xc 'nonsense' is not a functional"),
    ("3\n\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76 0.58\n", ["--workers", "0"],
     "--workers must be at least 1"),
])
def test_bad_input_is_one_clear_line_and_no_output(tmp_path, content, extra, message):
    geometry = tmp_path / "in.xyz"
    if content is not None:
        geometry.write_text(content)
    result = run_densnet("fit-density", geometry, "-o", tmp_path / "out.h5", *FAST, *extra)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not (tmp_path / "out.h5").exists()
    assert not (tmp_path / "out.h5.parts").exists()


def test_unconverged_frames_are_reported_never_stored_then_retried(water_frames, tmp_path):
    out = tmp_path / "w.h5"
    code, _, err = run_cli("fit-density", water_frames, "-o", out, *FAST, "--index", "0:2",
                           "--max-cycle", "1")
    assert code == 3
    assert "frame 0 failed: SCF did not converge" in err and "2 frames failed" in err
    ds = DensityDataset(out)
    assert len(ds) == 0
    assert [i for i, _ in ds.failed] == [0, 1]
    # The same command with enough SCF cycles completes the dataset.
    code, _, err = run_cli("fit-density", water_frames, "-o", out, *FAST, "--index", "0:2")
    assert code == 0, err
    ds = DensityDataset(out)
    assert len(ds) == 2 and ds.failed == []
    assert list(ds.per_frame(keys.SCF_STRATEGY)) == [b"diis", b"diis"]
    assert not out.with_name("w.h5.parts").exists()


def test_a_second_run_on_the_same_output_is_locked_out(water_frames, tmp_path):
    from densnet_cli.reference.partstore import PartStore

    store = PartStore(tmp_path / "w.h5")
    # Hold the lock as a concurrent run would, with the identity the command will compute.
    code, _, _ = run_cli("fit-density", water_frames, "-o", tmp_path / "w.h5", *FAST,
                         "--index", "0", "--max-cycle", "1")
    assert code == 3  # leaves a part store behind
    import json

    store.open(json.loads((store.dir / "identity.json").read_text()))
    try:
        code, _, err = run_cli("fit-density", water_frames, "-o", tmp_path / "w.h5", *FAST,
                               "--index", "0")
        assert code == 1 and "another fit-density run is writing" in err
    finally:
        store.close()


def test_file_is_hdf5_with_documented_names(labelled):
    _, h5, _ = labelled
    with h5py.File(h5) as f:
        for name in [keys.NUMBERS, keys.POSITIONS, keys.FORCES, keys.COEFFICIENTS,
                     keys.ENERGY, keys.DIPOLE, keys.ATOM_OFFSET, keys.COEFF_OFFSET,
                     keys.FIT_L1_PERCENT, keys.FAILED_INDEX, "sad/H", "sad/O"]:
            assert name in f, name
        assert f[keys.ATOM_OFFSET][-1] == f[keys.NUMBERS].shape[0] == 12
        assert f[keys.COEFF_OFFSET][-1] == f[keys.COEFFICIENTS].shape[0]


def test_an_unexpected_error_in_one_frame_is_a_reported_failure():
    """A crash inside PySCF for one frame becomes that frame's failure, not the run's end."""
    import numpy as np

    from densnet_cli.basis.layout import BasisSet
    from densnet_cli.reference.dft import LevelOfTheory
    from densnet_cli.reference.labelling import FrameTask, LabelSettings, label_frame
    from tests.conftest import WATER

    settings = LabelSettings(LevelOfTheory(xc="not-a-functional", basis="sto-3g"))
    basis = BasisSet.from_pyscf(settings.density_basis, ["H", "O"], "sto-3g")
    record = label_frame(FrameTask(7, WATER.numbers, WATER.positions, settings, basis,
                                   {"H": np.zeros(18), "O": np.zeros(77)}))
    assert record["source_index"] == 7
    assert record["error"].startswith("KeyError") and "LibXCFunctional" in record["error"]


@pytest.mark.parametrize(("symbols", "positions", "charge", "spin", "n_electrons"), [
    ("OH", [[0, 0, 0], [0, 0, 0.97]], 0, 1, 9),  # hydroxyl radical: UKS
    ("OH3", [[0, 0, 0.1], [0, 0.94, -0.2], [0.81, -0.47, -0.2], [-0.81, -0.47, -0.2]], 1, 0, 10),
])
def test_charged_and_open_shell_molecules(tmp_path, symbols, positions, charge, spin,
                                          n_electrons):
    import ase.io
    from ase import Atoms

    ase.io.write(tmp_path / "m.xyz", Atoms(symbols, positions=positions), format="extxyz")
    code, _, err = run_cli("fit-density", tmp_path / "m.xyz", "-o", tmp_path / "m.h5", *FAST,
                           "--charge", str(charge), "--spin", str(spin))
    assert code == 0, err
    ds = DensityDataset(tmp_path / "m.h5")
    assert ds.metadata["settings"]["level"]["spin"] == spin
    assert abs(ds.per_frame(keys.FIT_N_ELECTRONS)[0] - n_electrons) < 1e-6
    np.testing.assert_allclose(ds.per_frame(keys.FIT_DIPOLE), ds.per_frame(keys.DIPOLE),
                               atol=1e-9)
