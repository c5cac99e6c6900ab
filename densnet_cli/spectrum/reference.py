"""Reference spectra (CSV or JCAMP-DX) and how similar a computed spectrum is to one.

JCAMP-DX (JCAMP-DX 4.24, the format of NIST's gas-phase IR spectra): ``##XYDATA=(X++(Y..Y))``
in AFFN or the compressed ASDF forms (SQZ, DIF, DUP), or ``##XYPOINTS=(XY..XY)``; X in 1/CM,
MICROMETERS or NANOMETERS; Y as ABSORBANCE, or TRANSMITTANCE converted to absorbance −log10 T.
CSV: the first two numeric columns are wavenumber (cm⁻¹) and intensity; one header line allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densnet_cli.errors import InputError
from densnet_cli.spectrum.peaks import Peak

SQZ = {c: v for v, c in enumerate("@ABCDEFGHI")} | {c: -v for v, c in enumerate("@abcdefghi")
                                                    if v}
DIF = {c: v for v, c in enumerate("%JKLMNOPQR")} | {c: -v for v, c in enumerate("%jklmnopqr")
                                                    if v}
DUP = {c: v + 1 for v, c in enumerate("STUVWXYZs")}
AFFN = re.compile(r"[+\-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+\-]?\d+)?")
COMPRESSED = re.compile(r"[@A-DF-Ia-df-i%J-Rj-rS-Zs]")  # ASDF characters other than e/E
ASDF = re.compile(r"([@A-Ia-i%J-Rj-rS-Zs+\-]?)(\d*\.?\d*)")
GRID_POINTS = 2000  # common grid of the similarity measures
PEAK_MATCH_CM1 = 100.0  # a computed peak is matched to the nearest reference peak within this


@dataclass(frozen=True)
class Similarity:
    """Agreement with a reference on [lower, upper] cm⁻¹ (both spectra scaled to max 1).

    Attributes:
        pearson: Pearson correlation coefficient on a common grid.
        cosine: cosine similarity ⟨a, b⟩ / (|a| |b|) on that grid.
        peak_shifts: (computed position, reference position, computed − reference) in cm⁻¹
            for every computed peak with a reference peak within ``PEAK_MATCH_CM1``.
    """

    lower_cm1: float
    upper_cm1: float
    pearson: float
    cosine: float
    peak_shifts: list[tuple[float, float, float]]


def read_reference(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Wavenumbers (cm⁻¹, increasing) and intensities of a reference spectrum file.

    Raises:
        InputError: missing file, unsupported units, or malformed data (naming the line).
    """
    if not path.is_file():
        raise InputError(f"reference spectrum {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    nu, y = _read_jcamp(path, text) if text.lstrip().startswith("##") else _read_csv(path, text)
    order = np.argsort(nu)
    if len(nu) < 2 or not np.all(np.isfinite(y)):
        raise InputError(f"{path}: a reference spectrum needs ≥ 2 finite points")
    return nu[order], y[order]


def _read_csv(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split("#", 1)[0].replace(",", " ").split()
        if not fields:
            continue
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except (ValueError, IndexError):
            if rows:
                raise InputError(f"{path}:{number}: expected 'wavenumber, intensity', got "
                                 f"'{raw[:60]}'") from None
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def _leading(table: dict[str, int], prefix: str, digits: str) -> float:
    """The number an SQZ/DIF character plus its following digits stand for."""
    lead = table[prefix]
    return float(f"{'-' if lead < 0 else ''}{abs(lead)}{digits}")


def _asdf_values(path: Path, number: int, line: str) -> tuple[list[float], bool]:
    """Decode one AFFN/ASDF data line; returns its values and whether it ended in DIF form."""
    line = line.replace(",", " ").replace(";", " ")
    if not COMPRESSED.search(line):
        return [float(v) for v in AFFN.findall(line)], False
    values: list[float] = []
    last_kind, last_diff = "", 0.0
    try:
        for prefix, digits in ASDF.findall(line):
            if prefix in DUP:
                for _ in range(int(f"{DUP[prefix]}{digits}") - 1):
                    values.append(values[-1] + last_diff if last_kind == "dif" else values[-1])
            elif prefix in DIF:
                last_diff, last_kind = _leading(DIF, prefix, digits), "dif"
                values.append(values[-1] + last_diff)
            elif prefix in SQZ:
                values.append(_leading(SQZ, prefix, digits))
                last_kind = "abs"
            elif digits:
                values.append(float(prefix + digits))
                last_kind = "abs"
    except (ValueError, IndexError):
        raise InputError(f"{path}:{number}: cannot decode JCAMP-DX data '{line[:60]}'") from None
    return values, last_kind == "dif"


def _read_jcamp(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    labels: dict[str, str] = {}
    ys: list[float] = []
    pairs: list[float] = []
    mode = ""
    previous_dif = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("$$", 1)[0].strip()
        if line.startswith("##"):
            key, _, value = line[2:].partition("=")
            key = key.strip().upper().replace(" ", "").replace("-", "").replace("_", "")
            labels[key] = value.strip()
            mode = {"XYDATA": "xydata", "XYPOINTS": "xypoints"}.get(key, "")
            if mode == "xydata" and "X++(Y..Y)" not in value.replace(" ", "").upper():
                raise InputError(f"{path}:{number}: unsupported XYDATA form '{value.strip()}'")
            continue
        if not line or not mode:
            continue
        values, ends_dif = _asdf_values(path, number, line)
        if mode == "xypoints":
            pairs += values
        elif values:
            # after a line in DIF form, the next line repeats its last ordinate as a check value
            ys += values[2:] if previous_dif else values[1:]
            previous_dif = ends_dif
    xfactor = float(labels.get("XFACTOR", 1) or 1)
    yfactor = float(labels.get("YFACTOR", 1) or 1)
    if pairs:
        x = np.array(pairs[0::2]) * xfactor
        y = np.array(pairs[1::2]) * yfactor
    elif ys:
        try:
            first, last, n = (float(labels["FIRSTX"]), float(labels["LASTX"]),
                              int(float(labels["NPOINTS"])))
        except (KeyError, ValueError):
            raise InputError(f"{path}: JCAMP-DX XYDATA needs FIRSTX, LASTX and NPOINTS"
                             ) from None
        if n != len(ys):
            raise InputError(f"{path}: JCAMP-DX NPOINTS={n} but {len(ys)} values were read")
        x = np.linspace(first, last, n)
        y = np.array(ys) * yfactor
    else:
        raise InputError(f"{path}: no ##XYDATA or ##XYPOINTS block")
    return _to_wavenumber(path, x, labels.get("XUNITS", "1/CM")), _to_absorbance(
        path, y, labels.get("YUNITS", "ABSORBANCE"))


def _to_wavenumber(path: Path, x: np.ndarray, unit: str) -> np.ndarray:
    unit = unit.upper().replace(" ", "")
    if unit in ("1/CM", "CM-1", "CM^-1"):
        return x
    if unit in ("MICROMETERS", "MICRONS", "UM"):
        return 1e4 / x
    if unit in ("NANOMETERS", "NM"):
        return 1e7 / x
    raise InputError(f"{path}: JCAMP-DX XUNITS '{unit}' not supported (1/CM, MICROMETERS, "
                     f"NANOMETERS)")


def _to_absorbance(path: Path, y: np.ndarray, unit: str) -> np.ndarray:
    if unit.upper().startswith("TRANSMITTANCE"):
        t = y / 100.0 if np.nanmax(y) > 1.5 else y  # percent transmittance
        return -np.log10(np.clip(t, 1e-6, None))
    return y  # absorbance, molar absorptivity, arbitrary units: used as given


def compare(nu: np.ndarray, intensity: np.ndarray, ref_nu: np.ndarray, ref_y: np.ndarray,
            peaks: list[Peak], reference_peaks: list[Peak]) -> Similarity:
    """Pearson and cosine similarity on the overlapping range; peak position differences.

    Raises:
        InputError: if the two spectra do not overlap in wavenumber.
    """
    lower, upper = max(nu[0], ref_nu[0]), min(nu[-1], ref_nu[-1])
    if not upper > lower:
        raise InputError(f"the reference spectrum ({ref_nu[0]:.0f}–{ref_nu[-1]:.0f} cm⁻¹) does "
                         f"not overlap the computed one ({nu[0]:.0f}–{nu[-1]:.0f} cm⁻¹)")
    grid = np.linspace(lower, upper, GRID_POINTS)
    a = np.interp(grid, nu, intensity)
    b = np.interp(grid, ref_nu, ref_y)
    a, b = a / np.max(np.abs(a)), b / np.max(np.abs(b))
    pearson = float(np.corrcoef(a, b)[0, 1])
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    shifts = []
    ref_positions = np.array([p.position_cm1 for p in reference_peaks])
    for p in peaks:
        if ref_positions.size:
            j = int(np.argmin(np.abs(ref_positions - p.position_cm1)))
            if abs(ref_positions[j] - p.position_cm1) <= PEAK_MATCH_CM1:
                shifts.append((p.position_cm1, float(ref_positions[j]),
                               p.position_cm1 - float(ref_positions[j])))
    return Similarity(lower_cm1=float(lower), upper_cm1=float(upper), pearson=pearson,
                      cosine=cosine, peak_shifts=shifts)
