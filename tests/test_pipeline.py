"""The ethanol example end to end: i-PI NVE MD driven by `densnet serve` → `densnet spectrum`.

Runs examples/ethanol/pipeline.py (the code behind `make demo`) with the model shipped in
examples/ethanol/model, shortened: the representative end-to-end path that CI runs.  Labelling
and training go through the same command line in test_rmd17.py and test_training.py.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_md_through_serve_conserves_energy_and_gives_a_spectrum(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples/ethanol/pipeline.py"), str(tmp_path),
         "--model", str(ROOT / "examples/ethanol/model/ethanol_100.pt"), "--md-steps", "600",
         "--max-lag", "100", "--md-timeout", "600"],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert "conserved-energy drift" in summary
    md = np.loadtxt(tmp_path / "md.out")
    assert md[-1, 0] >= 590  # the run reached its end (i-PI writes every 10th step)
    conserved = md[:, 2]
    assert np.ptp(conserved) < 0.02  # eV over 0.3 ps of NVE: the forces are −∇E
    spectrum = np.loadtxt(tmp_path / "spectrum.csv", delimiter=",", skiprows=1)
    assert np.all(np.isfinite(spectrum[:, 1]))
    peak = spectrum[np.argmax(spectrum[:, 1]), 0]
    assert 2700 < peak < 3200  # ethanol's strongest band: C–H stretches
    assert (tmp_path / "spectrum.png").stat().st_size > 10_000
