#!/usr/bin/env bash
# Runs the test suite in the project's environment (make test; .ci/run calls make test).
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k hog`.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# Two cores: torch's intra-op threads per test process plus subprocess tools; keep it modest.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
"$PYTHON" -m pytest -q --durations=15 "$@" tests
status=$?
# pytest exits 5 when it collected no test: that is a failure for this project.
exit $status
