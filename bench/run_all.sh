#!/usr/bin/env bash
# Run every bench in turn; each prints its table and rewrites its own section of bench/RESULTS.md.
# Needs: the package installed (pip install -e .), wrk (apt-get install -y wrk; bench/webhook.py installs it
# when missing). Profilers used while fixing: pip install py-spy pyinstrument.
# Takes about 15-20 minutes on a 2-core machine; set BENCH_OUT to put the scratch files elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/replay.py "$@"
python bench/recompute.py
python bench/tick.py
python bench/webhook.py
python bench/memory.py
python bench/reads.py
