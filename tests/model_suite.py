"""Physics every DenSNet model variant must obey (inherit :class:`ModelPhysicsSuite`).

A subclass provides a ``model`` fixture (float64, eval mode); the tests use the ``ethanol``
fixture (conftest.py): the basis, SAD prior and geometries of the committed example dataset.
"""

import copy

import numpy as np
import torch
from e3nn import o3
from scipy.spatial.transform import Rotation

from densnet_cli.model.batch import collate


def predict(model, ds, molecules, charges=None, forces=True):
    batch = collate(ds.basis, molecules, charges=charges)
    return {k: v.detach() for k, v in model(batch, forces=forces).items()}


def wigner_blocks(ds, numbers, rotation):
    r = torch.as_tensor(rotation, dtype=torch.float64)
    return [o3.Irreps(b.irreps).D_from_matrix(r) for b in ds.basis.for_numbers(numbers)]


class ModelPhysicsSuite:
    """Rotation, translation, permutation, F = −∇E, ∫ρ = N, batching, dipole convention."""

    rotation = Rotation.from_euler("zyz", [0.4, -1.3, 2.2]).as_matrix()

    def test_rotation(self, model, ethanol):
        frame = ethanol[0]
        torch.set_default_dtype(torch.float64)
        try:
            blocks = wigner_blocks(ethanol, frame.numbers, self.rotation)
        finally:
            torch.set_default_dtype(torch.float32)
        a = predict(model, ethanol, [(frame.numbers, frame.positions)])
        b = predict(model, ethanol, [(frame.numbers, frame.positions @ self.rotation.T)])
        d = torch.block_diag(*blocks)
        r = torch.as_tensor(self.rotation)
        torch.testing.assert_close(b["coefficients"], d @ a["coefficients"], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["energy"], a["energy"], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["forces"], a["forces"] @ r.T, atol=1e-10, rtol=0)
        torch.testing.assert_close(b["dipole"], a["dipole"] @ r.T, atol=1e-10, rtol=0)
        assert (b["coefficients"] - a["coefficients"]).abs().max() > 1e-3  # not trivially equal
        if "exponent_scales" in a:  # flexible basis: scales are invariant per shell
            torch.testing.assert_close(b["exponent_scales"], a["exponent_scales"], atol=1e-10,
                                       rtol=0)

    def test_reflection(self, model, ethanol):
        """A mirror image (e.g. the other gauche conformer) is the same physics, reflected.

        The density is a true scalar field, so its coefficients transform with D(M) = (−1)^l
        parity for an improper M; energy is invariant, forces and dipole are polar vectors.
        """
        frame = ethanol[4]
        mirror = self.rotation @ np.diag([1.0, 1.0, -1.0])  # det −1
        torch.set_default_dtype(torch.float64)
        try:
            blocks = wigner_blocks(ethanol, frame.numbers, mirror)
        finally:
            torch.set_default_dtype(torch.float32)
        a = predict(model, ethanol, [(frame.numbers, frame.positions)])
        b = predict(model, ethanol, [(frame.numbers, frame.positions @ mirror.T)])
        m = torch.as_tensor(mirror)
        torch.testing.assert_close(b["coefficients"], torch.block_diag(*blocks)
                                   @ a["coefficients"], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["energy"], a["energy"], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["forces"], a["forces"] @ m.T, atol=1e-10, rtol=0)
        torch.testing.assert_close(b["dipole"], a["dipole"] @ m.T, atol=1e-10, rtol=0)

    def test_translation(self, model, ethanol):
        frame = ethanol[1]
        a = predict(model, ethanol, [(frame.numbers, frame.positions)])
        b = predict(model, ethanol, [(frame.numbers, frame.positions + np.array([2.0, -7.0, 0.5]))])
        for key in a:  # neutral: μ is invariant
            torch.testing.assert_close(b[key], a[key], atol=1e-10, rtol=0)

    def test_permutation(self, model, ethanol):
        frame = ethanol[2]
        perm = np.array([2, 0, 1, 8, 5, 3, 4, 7, 6])
        a = predict(model, ethanol, [(frame.numbers, frame.positions)])
        b = predict(model, ethanol, [(frame.numbers[perm], frame.positions[perm])])
        offsets = ethanol.basis.atom_offsets(frame.numbers)
        coeff_perm = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in perm])
        for key in ("coefficients", "exponent_scales"):
            if key in a:
                torch.testing.assert_close(b[key], a[key][coeff_perm], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["forces"], a["forces"][perm], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["populations"], a["populations"][perm], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["energy"], a["energy"], atol=1e-10, rtol=0)
        torch.testing.assert_close(b["dipole"], a["dipole"], atol=1e-10, rtol=0)

    def test_forces_are_minus_the_energy_gradient(self, model, ethanol):
        frame = ethanol[3]
        forces = predict(model, ethanol, [(frame.numbers, frame.positions)])["forces"]
        h = 2e-5  # central differences: truncation ~h² E‴ (stiff ZBL wall), rounding ~1e-16 E/h
        for atom, axis in [(0, 0), (2, 1), (5, 2), (8, 0)]:
            energies = []
            for sign in (1, -1):
                x = frame.positions.copy()
                x[atom, axis] += sign * h
                energies.append(predict(model, ethanol, [(frame.numbers, x)],
                                        forces=False)["energy"].item())
            fd = -(energies[0] - energies[1]) / (2 * h)
            assert abs(fd - forces[atom, axis].item()) < 1e-6 * max(1.0, abs(fd))

    def test_electron_count_is_exact_for_any_input(self, model, ethanol):
        rng = np.random.default_rng(0)
        frame = ethanol[4]
        positions = frame.positions + rng.normal(scale=0.3, size=frame.positions.shape)
        for charge in (0.0, 1.0, -2.0):
            out = predict(model, ethanol, [(frame.numbers, positions)], charges=[charge],
                          forces=False)
            q = torch.as_tensor(ethanol.basis.charges(frame.numbers))
            if "exponent_scales" in out:
                q = q * out["exponent_scales"] ** -0.75
            n = 26.0 - charge
            assert abs(float(q @ out["coefficients"]) - n) < 1e-10
            assert abs(float(out["populations"].sum()) - n) < 1e-10

    def test_distant_fragments_are_independent(self, model, ethanol):
        """Two different molecules 50 Å apart: energies, dipoles and densities just add."""
        a, b = ethanol[11], ethanol[12]
        far = b.positions + np.array([50.0, 0.0, 0.0])
        pair = predict(model, ethanol, [(np.concatenate([a.numbers, b.numbers]),
                                         np.concatenate([a.positions, far]))])
        one, two = (predict(model, ethanol, [(f.numbers, x)]) for f, x in ((a, a.positions),
                                                                             (b, far)))
        torch.testing.assert_close(pair["energy"], one["energy"] + two["energy"], atol=1e-9,
                                   rtol=0)
        torch.testing.assert_close(pair["dipole"], one["dipole"] + two["dipole"], atol=1e-10,
                                   rtol=0)
        for key in ("coefficients", "forces", "populations"):
            torch.testing.assert_close(pair[key], torch.cat([one[key], two[key]]), atol=1e-10,
                                       rtol=0)

    def test_batch_equals_single(self, model, ethanol):
        # Different sizes and compositions in one batch: ethanol, its CCO fragment, water-like.
        molecules = [(ethanol[5].numbers, ethanol[5].positions),
                     (ethanol[6].numbers[:3], ethanol[6].positions[:3]),
                     (ethanol[7].numbers[[2, 8]], ethanol[7].positions[[2, 8]])]
        batched = predict(model, ethanol, molecules)
        start_atom = start_coeff = 0
        for m, mol in enumerate(molecules):
            single = predict(model, ethanol, [mol])
            n, c = len(mol[0]), single["coefficients"].shape[0]
            torch.testing.assert_close(batched["energy"][m], single["energy"][0], atol=1e-10,
                                       rtol=0)
            torch.testing.assert_close(batched["dipole"][m], single["dipole"][0], atol=1e-10,
                                       rtol=0)
            torch.testing.assert_close(batched["forces"][start_atom:start_atom + n],
                                       single["forces"], atol=1e-10, rtol=0)
            torch.testing.assert_close(batched["coefficients"][start_coeff:start_coeff + c],
                                       single["coefficients"], atol=1e-10, rtol=0)
            start_atom, start_coeff = start_atom + n, start_coeff + c

    def test_float32_agrees_with_float64(self, model, ethanol):
        frame = ethanol[8]
        a = predict(model, ethanol, [(frame.numbers, frame.positions)])
        model32 = copy.deepcopy(model).float()  # a float32 round trip would round `model`
        b = model32(collate(ethanol.basis, [(frame.numbers, frame.positions)],
                            dtype=torch.float32))
        assert b["energy"].dtype == torch.float32
        torch.testing.assert_close(b["energy"].double(), a["energy"], atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(b["forces"].detach().double(), a["forces"], atol=1e-4,
                                   rtol=1e-4)

    def test_dipole_of_reference_coefficients_is_the_dft_dipole(self, model, ethanol):
        """The model's dipole formula and the fit's dipole constraint use one convention."""
        for i in (0, 50, 99):
            frame = ethanol[i]
            batch = collate(ethanol.basis, [(frame.numbers, frame.positions)])
            c = torch.as_tensor(frame.coefficients)
            mu = model.dipole(batch, batch.positions, c)[0]
            np.testing.assert_allclose(mu.numpy(), frame.dipole, atol=1e-9)
