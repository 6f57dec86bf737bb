#!/usr/bin/env bash
# Sets up what is missing, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export NAS_TEST_PYTHON="$PWD/.venv/bin/python"
swift build --build-tests
swift test --skip-build "$@"
# The trainer-side Python helper, against the nas just built.
NAS_BINARY="$PWD/.build/debug/nas" .venv/bin/python -m pytest -q python/tests
