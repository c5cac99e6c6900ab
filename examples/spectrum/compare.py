"""Print MD band positions and integrated intensities next to the harmonic normal modes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "out")
harmonic = np.loadtxt(out / "harmonic.csv", delimiter=",", skiprows=1, ndmin=2)
peaks = np.loadtxt(out / "water_ir.peaks.csv", delimiter=",", skiprows=1, ndmin=2)
print(f"{'mode':>6} {'harmonic cm-1':>14} {'MD cm-1':>9} {'shift':>7} "
      f"{'harmonic km/mol':>16} {'MD km/mol':>10} {'ratio':>6}")
for k, (nu, intensity) in enumerate(harmonic):
    j = int(np.argmin(np.abs(peaks[:, 0] - nu)))
    md_nu, md_int = peaks[j, 0], peaks[j, 2]
    print(f"{k + 1:>6} {nu:14.1f} {md_nu:9.1f} {md_nu - nu:+7.1f} {intensity:16.1f} "
          f"{md_int:10.1f} {md_int / intensity:6.3f}")
