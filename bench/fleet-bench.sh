#!/usr/bin/env bash
# Benchmarks of the fleet against peers in the same run (on demand, never in CI):
#   1. round trip of a trivial call, p50/p99: `h2load -c1 -m1` on `nas coordinator` (ListWorkers) vs on
#      `nghttpd --no-tls` (an empty file), plus our own libcurl client (FleetBench roundtrip) on the coordinator;
#   2. requests/s with `h2load -c8 -m16`, coordinator vs nghttpd (target >= 50%);
#   3. evaluations/s end to end with 4 constant-runner workers (target >= 20,000/s);
#   4. turnaround of a real evaluation (a tutorial CNN on a native-runner worker) minus its measuring time, next to
#      the seed's polling floor (30 s trainer sleep + up to 60 s evaluator sleep).
# Each is run RUNS times (default 3); medians and ratios are printed. Installs nghttp2-client and nghttp2-server
# (h2load, nghttpd) for itself: only this script needs them.
# Usage: bench/fleet-bench.sh [RUNS]
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
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

export NAS_FLEET_TOKEN=bench-token
"$bin/nas" coordinator --listen 127.0.0.1:0 >"$work/coordinator.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/coordinator.out" && break; sleep 0.05; done
ours="$(grep -o 'http://[0-9.:]*' "$work/coordinator.out")"
mkdir -p "$work/htdocs"; : >"$work/htdocs/empty"
# h2load cannot send an empty file: two bytes, an unknown field of ListWorkersRequest (field 1 = 0).
printf '\x08\x00' >"$work/empty.body"
peer_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
nghttpd --no-tls -d "$work/htdocs" "$peer_port" >/dev/null 2>&1 &
pids+=($!)
sleep 0.3
peer="http://127.0.0.1:$peer_port/empty"
our_call="$ours/nas.fleet.Coordinator/ListWorkers"
auth=(-H "authorization: Bearer $NAS_FLEET_TOKEN" -H "content-type: application/x-protobuf")

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# p50 and p99 (microseconds) of an h2load log: start time, status, duration in microseconds per request.
percentiles() { cut -f3 "$1" | sort -n | awk '{a[NR]=$1} END {printf "%d %d\n", a[int(NR*0.5)], a[int(NR*0.99)]}'; }

echo "== 1. round trip of a trivial call (h2load -c1 -m1 -n 20000), microseconds"
: >"$work/rt.ours"; : >"$work/rt.peer"; : >"$work/rt.curl"
for run in $(seq "$runs"); do
    h2load -c1 -m1 -n 20000 "${auth[@]}" -d "$work/empty.body" --log-file="$work/log.ours" "$our_call" >/dev/null
    h2load -c1 -m1 -n 20000 -d "$work/empty.body" --log-file="$work/log.peer" "$peer" >/dev/null
    percentiles "$work/log.ours" >>"$work/rt.ours"
    percentiles "$work/log.peer" >>"$work/rt.peer"
    "$bin/FleetBench" roundtrip "$ours" "$NAS_FLEET_TOKEN" 20000 | sed 's/.*p50_us=\([0-9.]*\) p99_us=\([0-9.]*\)/\1 \2/' >>"$work/rt.curl"
done
for name in ours peer curl; do
    p50="$(cut -d' ' -f1 "$work/rt.$name" | median)"; p99="$(cut -d' ' -f2 "$work/rt.$name" | median)"
    eval "${name}_p50=$p50; ${name}_p99=$p99"
done
echo "h2load -> nas coordinator:   p50 $ours_p50  p99 $ours_p99"
echo "h2load -> nghttpd --no-tls:  p50 $peer_p50  p99 $peer_p99"
echo "libcurl FleetClient -> nas:  p50 $curl_p50  p99 $curl_p99"
awk -v a="$ours_p50" -v b="$peer_p50" -v c="$ours_p99" -v d="$peer_p99" \
    'BEGIN {printf "ratio nas/nghttpd: p50 %.2f  p99 %.2f (lower is better)\n", a/b, c/d}'

echo "== 2. throughput (h2load -c8 -m16 -n 200000), requests/s"
: >"$work/tp.ours"; : >"$work/tp.peer"
for run in $(seq "$runs"); do
    h2load -c8 -m16 -n 200000 "${auth[@]}" -d "$work/empty.body" "$our_call" \
        | awk '/^finished in/ {print $4}' | tr -d , >>"$work/tp.ours"
    h2load -c8 -m16 -n 200000 -d "$work/empty.body" "$peer" | awk '/^finished in/ {print $4}' | tr -d , >>"$work/tp.peer"
done
tp_ours="$(median <"$work/tp.ours")"; tp_peer="$(median <"$work/tp.peer")"
echo "nas coordinator: $tp_ours req/s   nghttpd: $tp_peer req/s"
awk -v a="$tp_ours" -v b="$tp_peer" 'BEGIN {printf "ratio nas/nghttpd: %.2f (target >= 0.50)\n", a/b}'

echo "== 3. evaluations/s end to end, 4 constant-runner workers, 256 callers, 10 s"
: >"$work/ev"
for run in $(seq "$runs"); do
    line="$("$bin/FleetBench" evaluations 4 10 256)"
    echo "$line"
    echo "${line##*evals_per_s=}" >>"$work/ev"
done
echo "median: $(median <"$work/ev") evaluations/s (target >= 20000)"

echo "== 4. turnaround of one real evaluation minus its measuring time, 20 tutorial CNNs one after the other"
: >"$work/ta"
for run in $(seq "$runs"); do
    line="$("$bin/TurnaroundBench" 20)"
    echo "$line"
    echo "$line" | sed 's/.*overhead_p50_ms=\([0-9.]*\).*/\1/' >>"$work/ta"
done
echo "median: $(median <"$work/ta") ms of overhead per evaluation (the seed's polling floor: 30-90 s)"
