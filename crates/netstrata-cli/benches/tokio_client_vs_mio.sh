#!/bin/bash
# Server CPU per echoed message under the tokio client (examples/tokio_load),
# `netstrata echo-server` (one loop) against the hand-written mio echo (one
# thread), in rotating order; prints each round and the medians.
#
#   cargo build --release -p netstrata-cli --bin netstrata --example mio_echo --example tokio_load
#   crates/netstrata-cli/benches/tokio_client_vs_mio.sh [ROUNDS] [SIZE] [CONNS] [DEPTH] [SECS]
#
# Defaults: 5 rounds of 16 KiB, 4 connections x depth 4, 3 s. The server's
# CPU comes from /proc/PID/stat (user + system), per echo the client counted.
set -euo pipefail
ROUNDS=${1:-5} SIZE=${2:-16384} CONNS=${3:-4} DEPTH=${4:-4} SECS=${5:-3}
T=${CARGO_TARGET_DIR:-$(dirname "$0")/../../../target}/release
TCK=$(getconf CLK_TCK)

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Runs one server on `port`, loads it, prints its µs per echo.
measure() {
    local port=$1; shift
    "$@" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    local before after out msgs
    before=$(cpu "$pid")
    out=$("$T/examples/tokio_load" "127.0.0.1:$port" --conns "$CONNS" --depth "$DEPTH" --size "$SIZE" --secs "$SECS")
    after=$(cpu "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    msgs=$(echo "$out" | sed 's/.*"messages":\([0-9]*\).*/\1/')
    echo "($after - $before) / $TCK * 1000000 / $msgs" | bc -l
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

declare -a ours mio
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then
        ours+=("$(measure 7611 "$T/netstrata" echo-server --addr 127.0.0.1:7611 --threads 1)")
        mio+=("$(measure 7612 "$T/examples/mio_echo" 127.0.0.1:7612 1)")
    else
        mio+=("$(measure 7612 "$T/examples/mio_echo" 127.0.0.1:7612 1)")
        ours+=("$(measure 7611 "$T/netstrata" echo-server --addr 127.0.0.1:7611 --threads 1)")
    fi
    printf 'round %d: netstrata %.3f µs/msg, mio %.3f µs/msg\n' "$r" "${ours[-1]}" "${mio[-1]}"
done
a=$(printf '%s\n' "${ours[@]}" | median)
b=$(printf '%s\n' "${mio[@]}" | median)
printf 'medians: netstrata %.3f, mio %.3f µs/msg; netstrata / mio %.3f\n' "$a" "$b" "$(echo "$a / $b" | bc -l)"
