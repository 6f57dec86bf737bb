#!/usr/bin/env bash
# Installs what building, running and testing `nas` needs on Debian 12: system packages (as root, or
# with sudo), a Python venv in .venv with the test peers (onnx, onnxruntime, fake-gcs-server), and a
# single-node Slurm cluster for the Slurm launcher's tests (scripts/slurm-up.sh: munged, slurmctld, slurmd).
# Safe to run again: it only installs what is missing and starts what is not running.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    pkg-config zlib1g-dev libsqlite3-dev
    libnghttp2-dev libcurl4-openssl-dev libssl-dev openssl libprotobuf-c-dev protobuf-c-compiler libopenblas-dev
    dataset-fashion-mnist python3-venv chromium slurm-wlm munge
)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Slurm launcher's tests submit to this machine's own cluster.
$sudo bash scripts/slurm-up.sh

if ! command -v swift >/dev/null 2>&1; then
    echo "bootstrap: swift is not on PATH; install Swift 6 (swift.org) and run this again" >&2
    exit 1
fi

stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s scripts/requirements-test.txt "$stamp"; then
    echo "bootstrap: creating .venv with the test peers"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
    cp scripts/requirements-test.txt "$stamp"
fi
