"""Names of the quantities DenSNet stores and passes around, with shape and unit.

These are the dataset names inside a DenSNet HDF5 file (see ``docs/dataset.md``) and the keys
of a labelled-frame record.  Shapes use F = frames, A = atoms (all frames concatenated),
C = coefficients (all frames concatenated), n = atoms of one frame.
"""

# --- per atom, concatenated over frames (slice with ATOM_OFFSET) -------------------------------
NUMBERS = "atoms/numbers"  # (A,) int, atomic numbers
POSITIONS = "atoms/positions"  # (A, 3) Å
FORCES = "atoms/forces"  # (A, 3) eV/Å, DFT forces −∇E

# --- density coefficients, concatenated over frames (slice with COEFF_OFFSET) ------------------
COEFFICIENTS = "coefficients"  # (C,) e3nn order, weights of the electron number density

# --- DFT density matrices, packed lower triangles concatenated over frames (DM_OFFSET) -------
DENSITY_MATRIX = "dft/density_matrix"  # (D,) total (α+β) AO density matrix of the orbital basis,
#   PySCF AO order, lower triangle row by row (numpy.tril_indices); optional in a dataset

# --- per frame ---------------------------------------------------------------------------------
SOURCE_INDEX = "frames/source_index"  # (F,) int, frame index in the input geometry file
ATOM_OFFSET = "frames/atom_offset"  # (F+1,) int, frame f owns atoms [off[f], off[f+1])
COEFF_OFFSET = "frames/coeff_offset"  # (F+1,) int, frame f owns coefficients [off[f], off[f+1])
DM_OFFSET = "frames/dm_offset"  # (F+1,) int, frame f owns DENSITY_MATRIX [off[f], off[f+1])
ENERGY = "frames/energy"  # (F,) eV, DFT total energy
DIPOLE = "frames/dipole"  # (F, 3) e·Å, DFT dipole (nuclear − electronic), origin 0
FIT_DIPOLE = "frames/fit/dipole"  # (F, 3) e·Å, dipole of the fitted density
FIT_N_ELECTRONS = "frames/fit/n_electrons"  # (F,) e, ∫ρ̃ of the fitted density
FIT_COULOMB_ERROR = "frames/fit/coulomb_error"  # (F,) Hartree, (ρ−ρ̃|ρ−ρ̃)
FIT_RELATIVE_ERROR = "frames/fit/relative_error"  # (F,) 1, sqrt((ρ−ρ̃|ρ−ρ̃)/(ρ|ρ))
FIT_L1_PERCENT = "frames/fit/l1_percent"  # (F,) %, ∫|ρ̃−ρ|/N on the DFT grid
SAD_L1_PERCENT = "frames/fit/sad_l1_percent"  # (F,) %, ∫|ρ_SAD−ρ|/N on the DFT grid
SCF_STRATEGY = "frames/scf/strategy"  # (F,) str, which SCF strategy converged
SCF_CYCLES = "frames/scf/cycles"  # (F,) int, SCF iterations of that strategy
WALL_TIME = "frames/wall_time"  # (F,) s, DFT + fit time of the frame

# --- per element -------------------------------------------------------------------------------
SAD_PREFIX = "sad"  # sad/<Symbol>: (n_functions,) e3nn order, free-atom prior coefficients

# --- failed frames -----------------------------------------------------------------------------
FAILED_INDEX = "failed/source_index"  # (n_failed,) int
FAILED_REASON = "failed/reason"  # (n_failed,) str

# Per-frame record fields (what one labelled frame carries) and their HDF5 dataset.
FRAME_ARRAYS = {
    "energy": ENERGY,
    "dipole": DIPOLE,
    "fit_dipole": FIT_DIPOLE,
    "fit_n_electrons": FIT_N_ELECTRONS,
    "fit_coulomb_error": FIT_COULOMB_ERROR,
    "fit_relative_error": FIT_RELATIVE_ERROR,
    "fit_l1_percent": FIT_L1_PERCENT,
    "sad_l1_percent": SAD_L1_PERCENT,
    "scf_cycles": SCF_CYCLES,
    "wall_time": WALL_TIME,
}
ATOM_ARRAYS = {"numbers": NUMBERS, "positions": POSITIONS, "forces": FORCES}
