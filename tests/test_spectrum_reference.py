"""Reference spectra: JCAMP-DX and CSV reading, similarity measures, overlay through the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from densnet_cli.errors import InputError
from densnet_cli.spectrum.peaks import find_peaks
from densnet_cli.spectrum.reference import compare, read_reference
from tests.conftest import run_cli

NIST_HEADER = """##TITLE=WATER
##JCAMP-DX=4.24
##DATA TYPE=INFRARED SPECTRUM
##ORIGIN=test
##OWNER=public domain
##XUNITS={xunits}
##YUNITS={yunits}
##XFACTOR={xfactor}
##YFACTOR={yfactor}
##FIRSTX={firstx}
##LASTX={lastx}
##NPOINTS={npoints}
"""


def _bands(nu: np.ndarray, centres=(1600.0, 3700.0), width=15.0) -> np.ndarray:
    return sum(np.exp(-0.5 * ((nu - c) / width) ** 2) for c in centres)


def _write_affn(path, nu, y, xunits="1/CM", yunits="ABSORBANCE", per_line=8):
    """An uncompressed (AFFN) X++(Y..Y) file, the form NIST's gas-phase spectra use."""
    xfactor, yfactor = 1.0, 1e-6
    lines = [NIST_HEADER.format(xunits=xunits, yunits=yunits, xfactor=xfactor,
                                yfactor=yfactor, firstx=nu[0], lastx=nu[-1],
                                npoints=len(nu)).rstrip("\n"), "##XYDATA=(X++(Y..Y))"]
    ints = np.round(y / yfactor).astype(int)
    for i in range(0, len(nu), per_line):
        lines.append(f"{nu[i] / xfactor:.4f} " + " ".join(str(v) for v in ints[i:i + per_line]))
    lines.append("##END=")
    path.write_text("\n".join(lines) + "\n")


def test_jcamp_affn_absorbance(tmp_path):
    nu = np.linspace(400.0, 4000.0, 1801)
    y = _bands(nu)
    _write_affn(tmp_path / "w.jdx", nu, y)
    ref_nu, ref_y = read_reference(tmp_path / "w.jdx")
    np.testing.assert_allclose(ref_nu, nu)
    np.testing.assert_allclose(ref_y, y, atol=1e-6)


def test_jcamp_transmittance_in_micrometres_becomes_absorbance(tmp_path):
    microns = np.linspace(2.5, 20.0, 1401)  # X++(Y..Y) needs a uniform X axis
    nu = 1e4 / microns
    absorbance = 0.5 * _bands(nu)
    _write_affn(tmp_path / "t.jdx", microns, 10 ** (-absorbance), xunits="MICROMETERS",
                yunits="TRANSMITTANCE")
    ref_nu, ref_y = read_reference(tmp_path / "t.jdx")
    np.testing.assert_allclose(ref_nu, nu[::-1], rtol=1e-9)
    np.testing.assert_allclose(ref_y, absorbance[::-1], atol=1e-5)


def test_jcamp_compressed_difdup(tmp_path):
    """SQZ/DIF/DUP: 100 +2 +2 (DUP) 0 0 (DUP) −5 | check value 99, +1."""
    text = NIST_HEADER.format(xunits="1/CM", yunits="ABSORBANCE", xfactor=1, yfactor=0.01,
                              firstx=1000, lastx=1006, npoints=7)
    text += "##XYDATA=(X++(Y..Y))\n1000A00KT%Tn\n1005I9J\n##END=\n"
    (tmp_path / "c.jdx").write_text(text)
    _, y = read_reference(tmp_path / "c.jdx")
    np.testing.assert_allclose(y, [1.00, 1.02, 1.04, 1.04, 1.04, 0.99, 1.00])


def test_jcamp_wrong_point_count_is_an_error(tmp_path):
    text = NIST_HEADER.format(xunits="1/CM", yunits="ABSORBANCE", xfactor=1, yfactor=1,
                              firstx=1000, lastx=1003, npoints=5)
    (tmp_path / "bad.jdx").write_text(text + "##XYDATA=(X++(Y..Y))\n1000 1 2 3 4\n##END=\n")
    with pytest.raises(InputError, match="NPOINTS=5 but 4"):
        read_reference(tmp_path / "bad.jdx")


def test_similarity_is_one_for_the_same_spectrum_and_drops_when_shifted():
    nu = np.linspace(0.0, 4500.0, 3000)
    y = _bands(nu)
    same = compare(nu, y, nu, 3.0 * y, find_peaks(nu, y), find_peaks(nu, y))
    assert same.pearson == pytest.approx(1.0) and same.cosine == pytest.approx(1.0)
    shifted = _bands(nu, centres=(1620.0, 3680.0))
    other = compare(nu, y, nu, shifted, find_peaks(nu, y), find_peaks(nu, shifted))
    assert other.pearson < same.pearson - 0.3
    np.testing.assert_allclose([s[2] for s in other.peak_shifts], [-20.0, 20.0], atol=0.5)


def test_cli_reference_overlay_reports_peak_differences(tmp_path):
    dt, n = 0.5, 8000
    t = np.arange(n) * dt
    omega = 2 * np.pi * 2.99792458e-5 * np.array([1600.0, 3700.0])
    mu = np.column_stack([0.05 * np.cos(omega[0] * t), 0.01 * np.cos(omega[1] * t), 0 * t])
    np.save(tmp_path / "mu.npy", mu)
    nu = np.linspace(400.0, 4000.0, 1801)
    _write_affn(tmp_path / "ref.jdx", nu, _bands(nu, centres=(1590.0, 3710.0)))
    code, stdout, stderr = run_cli("spectrum", tmp_path / "mu.npy", "--dt", dt, "--max-lag",
                                   1000, "--reference", tmp_path / "ref.jdx", "-o",
                                   tmp_path / "s.csv", "--plot", tmp_path / "s.png")
    assert code == 0, stderr
    assert "+10.0 cm⁻¹" in stdout and "-10.0 cm⁻¹" in stdout
    assert "Pearson" in stdout
