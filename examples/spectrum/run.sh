#!/usr/bin/env bash
# IR spectrum of a flexible point-charge water molecule: ASE MD → dipole streams → densnet spectrum.
set -euo pipefail
cd "$(dirname "$0")"
python water_md.py --out out --runs 80 --nve-ps 2.0
densnet spectrum out/run_*.dipoles --max-lag 1000 --temperature 300 --intensity absolute \
    --min-wavenumber 1000 --max-wavenumber 4200 \
    -o out/water_ir.csv --peaks out/water_ir.peaks.csv --plot water_ir.png
python compare.py out
