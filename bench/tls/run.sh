#!/usr/bin/env bash
# HTTP/2 over TLS on the fleet against nghttp2's own tools, in one run (on demand, never in CI): the round trip of a
# trivial call, sequential (one connection, one stream at a time), p50 and p99 in microseconds, of
#   - our client (`FleetBench roundtrip`, its caller on the client's loop) on a coordinator over TLS and over h2c
#     (`FleetBench coordinator`: the fleet's Coordinator on an event loop of its own);
#   - `h2load -c1 -m1` on the same coordinators (ListWorkers), and on `nghttpd` over TLS and with --no-tls
#     (an empty file).
# Certificates (a CA and a server certificate for 127.0.0.1, EC P-256) are made with `openssl` for the run; h2load
# negotiates TLS 1.3 with nghttpd and with our server alike, our client checks the certificate against the CA.
# Each figure is measured RUNS times (default 3), alternating; the medians and the ratios are printed: our client on
# TLS against h2load on nghttpd over TLS, and what TLS adds to each (TLS / h2c).
# Installs nghttp2-client and nghttp2-server (h2load, nghttpd) for itself: only this script needs them.
# Usage: bench/tls/run.sh [RUNS] [CALLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-3}"
calls="${2:-20000}"
for package in nghttp2-client nghttp2-server; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null
    fi
done
swift build -c release --product FleetBench >/dev/null
bench="$(swift build -c release --show-bin-path)/FleetBench"
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${key[@]}" -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 -subj "/CN=nas bench ca" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req "${key[@]}" -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/server.pem" -days 2 -extfile "$work/server.ext" 2>/dev/null

token=bench-token
# Started here, not in a $(...) subshell, so that `pids` holds them for the cleanup.
start_coordinator() { # name, extra arguments
    "$bench" coordinator "$token" "${@:2}" >"$work/coordinator.$1" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$work/coordinator.$1" && break; sleep 0.05; done
}
start_coordinator tls "$work/server.pem" "$work/server.key"
start_coordinator h2c
ours_tls="$(grep -o 'https://[0-9.:]*' "$work/coordinator.tls")"
ours_h2c="$(grep -o 'http://[0-9.:]*' "$work/coordinator.h2c")"
mkdir -p "$work/htdocs"; : >"$work/htdocs/empty"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tls_port="$(free_port)"; h2c_port="$(free_port)"
nghttpd -d "$work/htdocs" "$tls_port" "$work/server.key" "$work/server.pem" >/dev/null 2>&1 &
pids+=($!)
nghttpd --no-tls -d "$work/htdocs" "$h2c_port" >/dev/null 2>&1 &
pids+=($!)
sleep 0.3
# h2load cannot send an empty file: two bytes, an unknown field of ListWorkersRequest (field 1 = 0).
printf '\x08\x00' >"$work/empty.body"
auth=(-H "authorization: Bearer $token" -H "content-type: application/x-protobuf")

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# p50 and p99 (microseconds) of an h2load log: start time, status, duration in microseconds per request.
percentiles() { cut -f3 "$1" | sort -n | awk '{a[NR]=$1} END {printf "%d %d\n", a[int(NR*0.5)], a[int(NR*0.99)]}'; }
h2load_rt() { # name, URL, extra h2load arguments
    h2load -c1 -m1 -n "$calls" -d "$work/empty.body" --log-file="$work/log" "${@:3}" "$2" >"$work/h2load.out"
    grep -q "succeeded, 0 errored" "$work/h2load.out" || grep -q "$calls succeeded" "$work/h2load.out" \
        || { echo "h2load on $2 failed:"; cat "$work/h2load.out"; exit 1; }
    percentiles "$work/log" >>"$work/rt.$1"
}
names=(ours.tls ours.h2c h2load-ours.tls h2load-ours.h2c nghttpd.tls nghttpd.h2c)
for name in "${names[@]}"; do : >"$work/rt.$name"; done

echo "== round trip of a trivial call, $calls sequential calls on one connection, microseconds ($runs runs)"
for run in $(seq "$runs"); do
    h2load_rt nghttpd.tls "https://127.0.0.1:$tls_port/empty"
    h2load_rt nghttpd.h2c "http://127.0.0.1:$h2c_port/empty"
    h2load_rt h2load-ours.tls "$ours_tls/nas.fleet.Coordinator/ListWorkers" "${auth[@]}"
    h2load_rt h2load-ours.h2c "$ours_h2c/nas.fleet.Coordinator/ListWorkers" "${auth[@]}"
    "$bench" roundtrip "$ours_tls" "$token" "$calls" loop "$work/ca.pem" \
        | sed 's/.*p50_us=\([0-9.]*\) p99_us=\([0-9.]*\)/\1 \2/' >>"$work/rt.ours.tls"
    "$bench" roundtrip "$ours_h2c" "$token" "$calls" loop \
        | sed 's/.*p50_us=\([0-9.]*\) p99_us=\([0-9.]*\)/\1 \2/' >>"$work/rt.ours.h2c"
done
p50() { cut -d' ' -f1 "$work/rt.$1" | median; }
p99() { cut -d' ' -f2 "$work/rt.$1" | median; }
printf '%-44s %8s %8s\n' "" p50 p99
printf '%-44s %8s %8s\n' "our client -> our coordinator, TLS" "$(p50 ours.tls)" "$(p99 ours.tls)"
printf '%-44s %8s %8s\n' "our client -> our coordinator, h2c" "$(p50 ours.h2c)" "$(p99 ours.h2c)"
printf '%-44s %8s %8s\n' "h2load -c1 -m1 -> our coordinator, TLS" "$(p50 h2load-ours.tls)" "$(p99 h2load-ours.tls)"
printf '%-44s %8s %8s\n' "h2load -c1 -m1 -> our coordinator, h2c" "$(p50 h2load-ours.h2c)" "$(p99 h2load-ours.h2c)"
printf '%-44s %8s %8s\n' "h2load -c1 -m1 -> nghttpd, TLS" "$(p50 nghttpd.tls)" "$(p99 nghttpd.tls)"
printf '%-44s %8s %8s\n' "h2load -c1 -m1 -> nghttpd --no-tls" "$(p50 nghttpd.h2c)" "$(p99 nghttpd.h2c)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "our client on TLS / h2load on nghttpd TLS (p50): $(ratio "$(p50 ours.tls)" "$(p50 nghttpd.tls)")x"
echo "h2load on our TLS coordinator / on nghttpd TLS (p50): $(ratio "$(p50 h2load-ours.tls)" "$(p50 nghttpd.tls)")x"
echo "TLS / h2c (p50): our client $(ratio "$(p50 ours.tls)" "$(p50 ours.h2c)")x," \
    "h2load on our coordinator $(ratio "$(p50 h2load-ours.tls)" "$(p50 h2load-ours.h2c)")x," \
    "h2load on nghttpd $(ratio "$(p50 nghttpd.tls)" "$(p50 nghttpd.h2c)")x"
