#!/usr/bin/env bash
# The embedded DenSNet demo: label rMD17 ethanol frames shipped with this example at
# PBE/def2-SVP, then compare with the published rMD17 labels and plot the result.
#   FRAMES=0:100 bash examples/ethanol/demo.sh     # more frames (≈10 s each on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
frames=${FRAMES:-0:10}
mkdir -p "$here/out"
densnet fit-density "$here/ethanol_rmd17_100.xyz" --index "$frames" -o "$here/out/ethanol.h5"
python "$here/summarize.py" "$here/out/ethanol.h5" "$here/ethanol_rmd17_100.xyz" \
    --plot "$here/out/fit_density_summary.png"
