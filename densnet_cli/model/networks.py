"""The two equivariant networks: positions → density coefficients, density → energy.

Both are message-passing networks over the same radius graph (:mod:`.layers`).  Elements enter
through one-hot species features and through per-element linear maps between a shared hidden
representation and each element's own irreps (its density-basis shells).
"""

from __future__ import annotations

import numpy as np
import torch
from ase.data import atomic_numbers
from e3nn import o3

from densnet_cli.basis.layout import BasisSet
from densnet_cli.basis.values import CHARGE_SCALE_POWER
from densnet_cli.model.batch import Batch
from densnet_cli.model.layers import Interaction, natural_irreps


def element_order(basis: BasisSet) -> list[str]:
    """The model's elements by atomic number: the order of species features everywhere."""
    return sorted(basis.elements, key=lambda s: atomic_numbers[s])


def hidden_irreps(features: int, lmax: int) -> o3.Irreps:
    """``features`` scalars, halving per l (at least 4): e.g. 32x0e+16x1o+8x2e+4x3o+4x4e."""
    return natural_irreps({l: max(features >> l, 4) for l in range(lmax + 1)})


def register_shell_scale(module: torch.nn.Module, name: str, function_shell: np.ndarray) -> None:
    """A scale with one value per shell (buffer ``name``, ones) and its shell index.

    Scaling all 2l+1 components of a shell by one number keeps equivariance; scales are
    therefore stored per shell and only expanded to functions by :func:`shell_scale`.
    """
    module.register_buffer(name, torch.ones(int(function_shell.max()) + 1, dtype=torch.float64))
    module.register_buffer(f"{name}_index", torch.tensor(function_shell, dtype=torch.long),
                           persistent=False)


def shell_scale(module: torch.nn.Module, name: str) -> torch.Tensor:
    """The per-shell scale ``name`` expanded to one value per function."""
    return getattr(module, name)[getattr(module, f"{name}_index")]


class SpeciesIndex(torch.nn.Module):
    """Atomic numbers → 0…S-1 in the order of ``symbols``, and one-hot features."""

    table: torch.Tensor  # (119,) species index of each atomic number, -1 if absent

    def __init__(self, symbols: list[str]):
        """Index the given element symbols."""
        super().__init__()
        table = torch.full((119,), -1, dtype=torch.long)
        for i, s in enumerate(symbols):
            table[atomic_numbers[s]] = i
        self.register_buffer("table", table)
        self.n_species = len(symbols)

    def forward(self, numbers: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(n,) atomic numbers → (n, S) one-hot."""
        index = self.table[numbers]
        if bool((index < 0).any()):
            unknown = sorted(set(numbers[index < 0].tolist()))
            raise ValueError(f"atomic numbers {unknown} are not elements of this model")
        return torch.nn.functional.one_hot(index, self.n_species).to(dtype)


class _MessagePassing(torch.nn.Module):
    """A stack of interactions from input irreps to ``hidden`` irreps."""

    def __init__(self, irreps_in: o3.Irreps, hidden: o3.Irreps, n_layers: int,
                 irreps_sh: o3.Irreps, n_species: int, n_radial: int, radial_hidden: int,
                 avg_num_neighbors: float):
        super().__init__()
        layers = []
        for _ in range(n_layers):
            layer = Interaction(irreps_in, hidden, irreps_sh, n_species, n_radial, radial_hidden,
                                avg_num_neighbors)
            layers.append(layer)
            irreps_in = layer.irreps_out
        self.layers = torch.nn.ModuleList(layers)
        self.irreps_out = irreps_in

    def forward(self, x, species, src, dst, edge_sh, edge_radial):
        for layer in self.layers:
            x = layer(x, species, src, dst, edge_sh, edge_radial)
        return x


def first_of_shell(function_shell: np.ndarray) -> np.ndarray:
    """Index of the first function of every shell (e3nn order), shape (n_shells,)."""
    return np.unique(function_shell, return_index=True)[1]


def electron_count_groups(batch: Batch, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(n,) group of each atom for the electron-count constraint.

    Neutral molecules: their fragments, the connected components of the radius graph (two
    molecules farther apart than the cutoff are then each neutral, whatever the other one does).
    Charged molecules: the whole molecule (which fragment carries the charge is not local
    information).  The graph never crosses molecules, so neither does a group.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(batch.numbers)
    molecule = batch.molecule.cpu().numpy()
    rows, cols = [src.cpu().numpy()], [dst.cpu().numpy()]
    charged = np.flatnonzero((batch.charge != 0).cpu().numpy()[molecule])
    if charged.size > 1:  # chain the atoms of each charged molecule together
        same = molecule[charged[:-1]] == molecule[charged[1:]]
        rows.append(charged[:-1][same])
        cols.append(charged[1:][same])
    i, j = np.concatenate(rows), np.concatenate(cols)
    _, labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)),
                                     directed=False)
    return torch.as_tensor(labels, dtype=torch.long, device=batch.molecule.device)


def project_sums(c: torch.Tensor, q: torch.Tensor, group: torch.Tensor, target: torch.Tensor
                 ) -> torch.Tensor:
    """Closest ``c`` (Euclidean) with ``Σ_{μ: group_μ = g} q_μ c_μ = target_g`` for every g."""
    current = torch.zeros_like(target).index_add(0, group, q * c)
    qq = torch.zeros_like(target).index_add(0, group, q * q)
    return c + q * ((target - current) / qq)[group]


class ChargeFlow(torch.nn.Module):
    """Electrons moved onto each atom by flows along the graph's edges, (n,).

    The flow along edge ``A → B`` is ``f_AB = Σ_k R_k(r_AB) [g(a_A, a_B) − g(a_B, a_A)]_k``:
    ``a`` are invariant features of each atom (a linear map of its hidden scalars), ``g`` a
    small MLP, ``R_k`` the edge's radial basis (zero, with three derivatives, at the cutoff).
    It is antisymmetric, so what leaves ``A`` arrives at ``B`` and the total never changes;
    it is invariant, so the populations are; and it is local.  The MLP's last layer starts
    at zero: an untrained model keeps every atom neutral.
    """

    def __init__(self, irreps_hidden: o3.Irreps, n_radial: int, width: int, features: int = 8):
        """Flows from ``irreps_hidden`` node features and ``n_radial`` edge functions."""
        super().__init__()
        self.features = o3.Linear(irreps_hidden, f"{features}x0e")
        last = torch.nn.Linear(width, n_radial)
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(2 * features, width), torch.nn.SiLU(),
                                       last)

    def forward(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                edge_radial: torch.Tensor) -> torch.Tensor:
        """Net electrons gained by each atom (sums to zero over every fragment)."""
        a = self.features(h)
        pair = torch.cat([a[src], a[dst]], 1)
        swapped = torch.cat([a[dst], a[src]], 1)
        flow = ((self.mlp(pair) - self.mlp(swapped)) * edge_radial).sum(1)  # src → dst
        return torch.zeros(len(h), dtype=h.dtype, device=h.device).index_add(0, dst, flow)


class DensityNetwork(torch.nn.Module):
    """Positions → coefficients ``c = c_SAD + Δ`` with ``∫ρ = N`` exactly.

    Per-element heads map the hidden features onto exactly the element's basis irreps; each
    shell's output is scaled by a constant (the spread of the training Δ for that shell).  The
    electron count is then imposed by the Euclidean projection of the coefficient vector onto
    ``Σ c_μ ∫φ_μ = Σ Z − charge`` — it moves only ``l = 0`` coefficients, so it is equivariant.
    The constraint holds per *fragment* (connected part of the radius graph) of a neutral
    molecule — so that fragments farther apart than the cutoff stay neutral and independent,
    as locality requires — and for the whole of a charged molecule.

    With ``charge_flow`` the constraint is local instead: every atom is first made neutral
    (``Σ_{μ∈A} c_μ ∫φ_μ = Z_A``, the closest such ``c``), then electrons move between atoms
    along the edges of the graph, ``n_A = Z_A + Σ_B f_BA`` with learned flows that are
    antisymmetric (``f_AB = −f_BA``), invariant and vanish smoothly at the cutoff
    (:class:`ChargeFlow`).  ``∫ρ = N`` then holds exactly per fragment, and a displacement
    moves charge only within the network's receptive field plus one cutoff — so a dipole
    derivative does not depend on how long the molecule is, which the fragment-wide
    projection does not give (it spreads a local count error over the whole fragment, and the
    dipole of that spread grows with the fragment's length).  Charged molecules get the
    remaining charge by the projection over the whole molecule.

    With ``max_exponent_factor > 1`` (the *flexible* basis) a second per-element head gives one
    invariant scalar per shell and atom, ``s = f^{tanh(z)}`` in ``[1/f, f]``, that multiplies
    the shell's exponents (see :mod:`densnet_cli.basis.values`); ``∫φ`` then carries
    ``s^{-3/4}`` and the projection uses it.  The head starts at zero, so ``s = 1``.
    """

    def __init__(self, basis: BasisSet, sad: dict[str, torch.Tensor], irreps_sh: o3.Irreps,
                 hidden: o3.Irreps, n_layers: int, n_radial: int, radial_hidden: int,
                 avg_num_neighbors: float, delta: bool = True, max_exponent_factor: float = 1.0,
                 charge_flow: bool = False):
        """Density network for the elements of ``basis`` (``sad``: per-element prior)."""
        super().__init__()
        self.symbols = element_order(basis)
        self.delta = delta
        self.flexible = max_exponent_factor > 1.0
        self.log_max_factor = float(np.log(max(max_exponent_factor, 1.0)))
        self.embed = o3.Linear(f"{len(self.symbols)}x0e", hidden.filter(keep=["0e"]))
        self.body = _MessagePassing(self.embed.irreps_out, hidden, n_layers, irreps_sh,
                                    len(self.symbols), n_radial, radial_hidden,
                                    avg_num_neighbors)
        self.heads = torch.nn.ModuleDict(
            {s: o3.Linear(self.body.irreps_out, basis[s].irreps) for s in self.symbols})
        if self.flexible:
            self.exponent_heads = torch.nn.ModuleDict(
                {s: o3.Linear(self.body.irreps_out, f"{len(basis[s].shells)}x0e")
                 for s in self.symbols})
        self.flow = (ChargeFlow(self.body.irreps_out, n_radial, radial_hidden)
                     if charge_flow else None)
        with torch.no_grad():  # start exactly at the prior (Δ = 0, s = 1); gradients still flow
            for head in [*self.heads.values(),
                         *(self.exponent_heads.values() if self.flexible else [])]:
                head.weight.zero_()  # type: ignore[operator]
        for s in self.symbols:
            self.register_buffer(f"sad_{s}", torch.tensor(sad[s], dtype=torch.float64))
            self.register_buffer(f"charges_{s}", torch.tensor(basis[s].charges))
            register_shell_scale(self, f"scale_{s}", basis[s].function_shell)
            self.register_buffer(f"function_shell_{s}",
                                 torch.tensor(basis[s].function_shell), persistent=False)

    def per_element(self, name: str, symbol: str) -> torch.Tensor:
        """The per-function buffer ``name`` (sad, charges, scale) of one element."""
        if name == "scale":
            return shell_scale(self, f"scale_{symbol}")
        return getattr(self, f"{name}_{symbol}")

    def flat(self, name: str, batch: Batch, dtype: torch.dtype) -> torch.Tensor:
        """A per-element buffer laid out over the batch's coefficients, (C,)."""
        out = torch.zeros(batch.n_coefficients, dtype=dtype, device=batch.positions.device)
        for s, idx in batch.element_coeffs.items():
            out[idx] = self.per_element(name, s).to(dtype)
        return out

    def forward(self, batch: Batch, species: torch.Tensor, src, dst, edge_sh, edge_radial
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(C,) coefficients, e3nn order, and (C,) exponent scales (None: fixed basis)."""
        dtype = edge_sh.dtype
        h = self.body(self.embed(species), species, src, dst, edge_sh, edge_radial)
        delta = torch.zeros(batch.n_coefficients, dtype=dtype, device=h.device)
        scales = torch.ones_like(delta) if self.flexible else None
        for s, atoms in batch.element_atoms.items():
            out = self.heads[s](h[atoms]) * self.per_element("scale", s).to(dtype)
            index = (batch.element_coeffs[s].reshape(-1),)
            delta = delta.index_put(index, out.reshape(-1))
            if scales is not None:
                z = self.exponent_heads[s](h[atoms])[:, getattr(self, f"function_shell_{s}")]
                scales = scales.index_put(index, torch.exp(self.log_max_factor
                                                           * torch.tanh(z)).reshape(-1))
        c = self.flat("sad", batch, dtype) + delta if self.delta else delta
        if self.flow is None:
            groups = electron_count_groups(batch, src, dst)
            return self.project_electron_count(batch, c, scales, groups), scales
        moved = self.flow(h, src, dst, edge_radial)
        c = self.project_atom_populations(batch, c, scales,
                                          batch.numbers.to(dtype) + moved)
        if bool((batch.charge != 0).any()):
            charged = (batch.charge != 0)[batch.coeff_molecule].to(dtype)
            c = c + charged * (self.project_electron_count(batch, c, scales) - c)
        return c, scales

    def charges(self, batch: Batch, scales: torch.Tensor | None, dtype: torch.dtype
                ) -> torch.Tensor:
        """``∫φ_μ`` over the batch's coefficients (with exponent scales when flexible), (C,)."""
        q = self.flat("charges", batch, dtype)
        return q if scales is None else q * scales ** CHARGE_SCALE_POWER

    def project_electron_count(self, batch: Batch, c: torch.Tensor,
                               scales: torch.Tensor | None = None,
                               groups: torch.Tensor | None = None) -> torch.Tensor:
        """Closest ``c`` (Euclidean) with ``Σ c_μ ∫φ_μ = Σ Z − charge`` per group of atoms.

        ``groups`` (n,) labels the atoms whose electron count is imposed together (see
        :func:`electron_count_groups`; each group lies within one molecule); default: molecules.
        """
        q = self.charges(batch, scales, c.dtype)
        if groups is None:
            groups = batch.molecule
        n_groups = int(groups.max()) + 1
        m = groups[batch.coeff_atom]
        target = torch.zeros(n_groups, dtype=c.dtype, device=c.device)
        target.index_add_(0, groups, batch.numbers.to(c.dtype))
        charge = torch.zeros_like(target).index_put(
            (groups,), batch.charge.to(c.dtype)[batch.molecule])  # 0 for neutral molecules
        target = target - charge
        return project_sums(c, q, m, target)

    def project_atom_populations(self, batch: Batch, c: torch.Tensor,
                                 scales: torch.Tensor | None, target: torch.Tensor
                                 ) -> torch.Tensor:
        """Closest ``c`` (Euclidean) with ``Σ_{μ∈A} c_μ ∫φ_μ = target_A`` on every atom."""
        return project_sums(c, self.charges(batch, scales, c.dtype), batch.coeff_atom, target)


class EnergyNetwork(torch.nn.Module):
    """Density coefficients (+ geometry) → total energy (eV).

    Each atom's coefficients, relative to its SAD block and divided by per-shell scales, pass
    through a per-element linear map into shared hidden irreps; interactions over the graph
    follow; a linear readout gives one energy per atom, shifted by a per-element reference
    energy (fitted on the training set) and summed per molecule.
    """

    reference_energy: torch.Tensor  # (S,) eV per atom of each element
    energy_scale: torch.Tensor  # () eV, scale of the learned atomic energies

    def __init__(self, basis: BasisSet, irreps_sh: o3.Irreps, hidden: o3.Irreps, n_layers: int,
                 n_radial: int, radial_hidden: int, avg_num_neighbors: float,
                 flexible: bool = False):
        """Energy network for the elements of ``basis`` (``flexible``: also reads log s)."""
        super().__init__()
        self.hidden_dim = hidden.dim
        self.symbols = element_order(basis)
        self.flexible = flexible

        def irreps_in(s: str) -> str:
            extra = f"+{len(basis[s].shells)}x0e" if flexible else ""
            return basis[s].irreps + extra

        self.inputs = torch.nn.ModuleDict(
            {s: o3.Linear(irreps_in(s), hidden, biases=True) for s in self.symbols})
        self.body = _MessagePassing(hidden, hidden, n_layers, irreps_sh, len(self.symbols),
                                    n_radial, radial_hidden, avg_num_neighbors)
        self.readout = o3.Linear(self.body.irreps_out, "1x0e")
        self.register_buffer("reference_energy", torch.zeros(len(self.symbols),
                                                             dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        for s in self.symbols:
            register_shell_scale(self, f"input_scale_{s}", basis[s].function_shell)
            self.register_buffer(f"first_of_shell_{s}", torch.tensor(
                first_of_shell(basis[s].function_shell)), persistent=False)

    def forward(self, batch: Batch, coefficients_delta: torch.Tensor, species: torch.Tensor,
                src, dst, edge_sh, edge_radial, scales: torch.Tensor | None = None
                ) -> torch.Tensor:
        """(M,) energies in eV; ``coefficients_delta`` = c − c_SAD, (C,); ``scales`` (C,)."""
        dtype = edge_sh.dtype
        x = torch.zeros(len(batch.numbers), self.hidden_dim, dtype=dtype, device=edge_sh.device)
        for s, atoms in batch.element_atoms.items():
            block = coefficients_delta[batch.element_coeffs[s]]
            block = block / shell_scale(self, f"input_scale_{s}").to(dtype)
            if self.flexible:
                if scales is None:
                    raise ValueError("a flexible-basis energy network needs exponent scales")
                log_s = torch.log(scales[batch.element_coeffs[s]])
                block = torch.cat([block, log_s[:, getattr(self, f"first_of_shell_{s}")]], 1)
            x = x.index_put((atoms,), self.inputs[s](block))
        h = self.body(x, species, src, dst, edge_sh, edge_radial)
        atomic = self.readout(h).squeeze(-1) * self.energy_scale.to(dtype)
        atomic = atomic + species @ self.reference_energy.to(dtype)
        return torch.zeros(batch.n_molecules, dtype=dtype, device=h.device).index_add(
            0, batch.molecule, atomic)
