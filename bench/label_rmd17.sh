#!/usr/bin/env bash
# Label the rMD17 ethanol frames of ../shared/data at PBE/def2-SVP in chunks of 100, test set
# (800-999) first, then training frames.  Each chunk is its own dataset, written atomically and
# resumable: rerun this script after any interruption.  `densnet train` reads several files.
#   THREADS=1 bash bench/label_rmd17.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${RMD17:-$root/../shared/data/rmd17_ethanol_1000.xyz}
for start in 800 900 100 200 300 400 500 600 700; do
    stop=$((start + 100))
    out=$root/bench/data/rmd17_ethanol_${start}-$((stop - 1)).h5
    densnet fit-density "$src" --index "$start:$stop" -o "$out" --threads "${THREADS:-0}"
done
