#!/usr/bin/env bash
# Runs the test suite in the project's environment (make test; .ci/run calls make test).
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k hog`.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# Style first (ruff.toml): a lint error fails the run before any test.
"$PYTHON" -m ruff check . || exit 1
# Two cores, two pytest-xdist workers of one torch thread each; tests/conftest.py groups the
# tests so each file stays on one worker and multi-process runs never overlap.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$PYTHON" -m pytest -q -n "${TEST_WORKERS:-2}" --dist loadgroup --durations=15 "$@" tests
status=$?
# pytest exits 5 when it collected no test: that is a failure for this project.
exit $status
