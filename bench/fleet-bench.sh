#!/usr/bin/env bash
# Benchmarks of the fleet against peers in the same run (on demand, never in CI):
#   1. round trip of a trivial call, p50/p99: `h2load -c1 -m1` on `nas coordinator` (ListWorkers) vs on
#      `nghttpd --no-tls` (an empty file), plus our own client (FleetBench roundtrip: FleetClient on the HTTP2
#      module's event loop, its caller on that loop too, `withTaskExecutorPreference(client.loop)`: a caller that
#      does nothing between calls; `FleetBench roundtrip URL TOKEN COUNT pool` measures one on Swift's pool) on the
#      coordinator;
#   2. requests/s with `h2load -c8 -m16`, coordinator vs nghttpd;
#   3. evaluations/s end to end with 4 constant-runner workers;
#   4. turnaround of a real evaluation (a tutorial CNN on a native-runner worker) minus its measuring time, the caller
#      on Swift's pool as a trainer is (`TurnaroundBench 20 loop`: on the client's loop), next to the seed's polling
#      floor (30 s trainer sleep + up to 60 s evaluator sleep).
# Each is run RUNS times (default 3), alternating between builds; medians and the targets' ratios are printed:
# our client's p50 within 1.3x of h2load's on the same coordinator, throughput >= 0.6x nghttpd's, evaluations/s
# >= 15% of nghttpd's request rate, turnaround overhead < 1 ms.
# With BASE=DIR (the release bin folder of another commit, built with `swift build -c release --product nas`,
# `--product FleetBench` (and `TurnaroundBench` where it exists) in a worktree of its own), every figure is
# measured for that build too, side by side.
# Installs nghttp2-client and nghttp2-server (h2load, nghttpd) for itself: only this script needs them.
# Usage: [BASE=DIR] bench/fleet-bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
for package in nghttp2-client nghttp2-server; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null
    fi
done
swift build -c release --product nas >/dev/null
swift build -c release --product FleetBench >/dev/null
swift build -c release --product TurnaroundBench >/dev/null
declare -A bin
bin[this]="$(swift build -c release --show-bin-path)"
builds=(this)
if [ -n "${BASE:-}" ]; then bin[base]="$BASE"; builds+=(base); fi
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

export NAS_FLEET_TOKEN=bench-token
declare -A url
for build in "${builds[@]}"; do
    "${bin[$build]}/nas" coordinator --listen 127.0.0.1:0 >"$work/coordinator.$build" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$work/coordinator.$build" && break; sleep 0.05; done
    url[$build]="$(grep -o 'http://[0-9.:]*' "$work/coordinator.$build")"
done
mkdir -p "$work/htdocs"; : >"$work/htdocs/empty"
# h2load cannot send an empty file: two bytes, an unknown field of ListWorkersRequest (field 1 = 0).
printf '\x08\x00' >"$work/empty.body"
peer_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
nghttpd --no-tls -d "$work/htdocs" "$peer_port" >/dev/null 2>&1 &
pids+=($!)
sleep 0.3
peer="http://127.0.0.1:$peer_port/empty"
auth=(-H "authorization: Bearer $NAS_FLEET_TOKEN" -H "content-type: application/x-protobuf")

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# p50 and p99 (microseconds) of an h2load log: start time, status, duration in microseconds per request.
percentiles() { cut -f3 "$1" | sort -n | awk '{a[NR]=$1} END {printf "%d %d\n", a[int(NR*0.5)], a[int(NR*0.99)]}'; }
for build in "${builds[@]}"; do : >"$work/rt.h2load.$build"; : >"$work/rt.client.$build"; : >"$work/tp.$build"
    : >"$work/ev.$build"; : >"$work/ta.$build"; done
: >"$work/rt.peer"; : >"$work/tp.peer"

echo "== 1. round trip of a trivial call (h2load -c1 -m1 -n 20000; our client, 20000 calls), microseconds"
for run in $(seq "$runs"); do
    h2load -c1 -m1 -n 20000 -d "$work/empty.body" --log-file="$work/log.peer" "$peer" >/dev/null
    percentiles "$work/log.peer" >>"$work/rt.peer"
    for build in "${builds[@]}"; do
        h2load -c1 -m1 -n 20000 "${auth[@]}" -d "$work/empty.body" --log-file="$work/log.ours" \
            "${url[$build]}/nas.fleet.Coordinator/ListWorkers" >/dev/null
        percentiles "$work/log.ours" >>"$work/rt.h2load.$build"
        "${bin[$build]}/FleetBench" roundtrip "${url[$build]}" "$NAS_FLEET_TOKEN" 20000 \
            | sed 's/.*p50_us=\([0-9.]*\) p99_us=\([0-9.]*\)/\1 \2/' >>"$work/rt.client.$build"
    done
done
p50() { cut -d' ' -f1 "$1" | median; }
p99() { cut -d' ' -f2 "$1" | median; }
echo "h2load -> nghttpd --no-tls:        p50 $(p50 "$work/rt.peer")  p99 $(p99 "$work/rt.peer")"
for build in "${builds[@]}"; do
    echo "h2load -> nas coordinator ($build): p50 $(p50 "$work/rt.h2load.$build")  p99 $(p99 "$work/rt.h2load.$build")"
    echo "our client -> nas ($build):        p50 $(p50 "$work/rt.client.$build")  p99 $(p99 "$work/rt.client.$build")"
    awk -v a="$(p50 "$work/rt.h2load.$build")" -v b="$(p50 "$work/rt.peer")" -v c="$(p50 "$work/rt.client.$build")" \
        'BEGIN {printf "  %s: coordinator/nghttpd p50 %.2f; our client/h2load p50 %.2f (target <= 1.3)\n", "'"$build"'", a/b, c/a}'
done

echo "== 2. throughput (h2load -c8 -m16 -n 200000), requests/s"
for run in $(seq "$runs"); do
    h2load -c8 -m16 -n 200000 -d "$work/empty.body" "$peer" | awk '/^finished in/ {print $4}' | tr -d , >>"$work/tp.peer"
    for build in "${builds[@]}"; do
        h2load -c8 -m16 -n 200000 "${auth[@]}" -d "$work/empty.body" "${url[$build]}/nas.fleet.Coordinator/ListWorkers" \
            | awk '/^finished in/ {print $4}' | tr -d , >>"$work/tp.$build"
    done
done
tp_peer="$(median <"$work/tp.peer")"
echo "nghttpd: $tp_peer req/s"
for build in "${builds[@]}"; do
    awk -v a="$(median <"$work/tp.$build")" -v b="$tp_peer" \
        'BEGIN {printf "nas coordinator (%s): %d req/s, %.2fx nghttpd (target >= 0.6)\n", "'"$build"'", a, a/b}'
done

echo "== 3. evaluations/s end to end, 4 constant-runner workers, 256 callers, 10 s"
for run in $(seq "$runs"); do
    for build in "${builds[@]}"; do
        line="$("${bin[$build]}/FleetBench" evaluations 4 10 256)"
        echo "$build: $line"
        echo "${line##*evals_per_s=}" >>"$work/ev.$build"
    done
done
for build in "${builds[@]}"; do
    awk -v a="$(median <"$work/ev.$build")" -v b="$tp_peer" \
        'BEGIN {printf "median (%s): %d evaluations/s, %.1f%% of nghttpd'"'"'s request rate (target >= 15%%)\n", "'"$build"'", a, 100*a/b}'
done

# TurnaroundBench since the native runner left the fleet; FleetBench turnaround in builds from before.
turnaround() {
    if [ -x "${bin[$1]}/TurnaroundBench" ]; then "${bin[$1]}/TurnaroundBench" 20; else "${bin[$1]}/FleetBench" turnaround 20; fi
}
echo "== 4. turnaround of one real evaluation minus its measuring time, 20 tutorial CNNs one after the other"
for run in $(seq "$runs"); do
    for build in "${builds[@]}"; do
        line="$(turnaround "$build")"
        echo "$build: $line"
        echo "$line" | sed 's/.*overhead_p50_ms=\([0-9.]*\).*/\1/' >>"$work/ta.$build"
    done
done
for build in "${builds[@]}"; do
    echo "median ($build): $(median <"$work/ta.$build") ms of overhead per evaluation (target < 1 ms; the seed's polling floor: 30-90 s)"
done
