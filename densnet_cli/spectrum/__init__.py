"""IR spectra from dipole time series (``densnet spectrum``).

The modules follow the data flow: :mod:`.series` (a checked dipole time series) →
:mod:`.readers` (every input format) → :mod:`.lineshape` (derivative, autocorrelation, window,
Fourier transform) → :mod:`.averaging` (beads, blocks, trajectories) → :mod:`.corrections`
(quantum corrections, absolute intensities) → :mod:`.peaks`, :mod:`.reference`,
:mod:`.plotting` → :mod:`.run` (the command).  The physics is in ``docs/spectrum.md``.
"""
