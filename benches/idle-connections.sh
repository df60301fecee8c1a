#!/usr/bin/env bash
# Idle connections must not starve the webhook: /mutate under wrk from
# 127.0.0.1, first alone (the baseline), then while benches/idle_holder.py
# holds HOLD idle connections from 127.0.0.2 (half never start a TLS
# handshake, half finish it and go silent; every one the server closes is
# opened again at once). Prints throughput and p99 for both, what the holder
# managed, and the server's refusal counters.
#
#   benches/idle-connections.sh
#   HOLD=4000 DURATION=20s benches/idle-connections.sh
#   BEFORE=path/to/older/registry-resolver benches/idle-connections.sh   # that build too
#
# Needs wrk (apt-get install wrk). Everything listens on 127.0.0.1 and stops
# when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

HOLD=${HOLD:-4000}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-18443}
ADMIN_PORT=${ADMIN_PORT:-18080}

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
# The holder and the server each need a descriptor per connection.
ulimit -n "$(ulimit -Hn)"
cargo build --quiet --release --locked --bin registry-resolver

# shellcheck source=benches/common.sh
source benches/common.sh
review=benches/review-deployment.json
write_post_script "$review"
seconds=${DURATION%s}

bench() { # name binary
  local name=$1 binary=$2
  rm -rf "$work/data"
  "$binary" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --data-dir "$work/data" --certs-dir "$work/certs" --admin-token bench --log-level error &
  local server=$!
  pids+=("$server")
  wait_for_port "$ADMIN_PORT"
  wait_ready "$ADMIN_PORT"
  add_demo_record "$PORT" bench
  wrk -t1 -c4 -d2s -s "$work/post.lua" "https://localhost:$PORT/mutate" >/dev/null

  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 10s -s "$work/post.lua" \
    "https://localhost:$PORT/mutate" > "$work/$name-alone.txt"

  # The holder starts first and runs 4 s longer than wrk, so wrk measures
  # only while the connections are held.
  python3 benches/idle_holder.py 127.0.0.1 "$PORT" 127.0.0.2 "$HOLD" "$((seconds + 6))" > "$work/$name-holder.json" &
  local holder=$!
  sleep 2
  curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$ADMIN_PORT/readyz" > "$work/$name-ready.txt"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 10s -s "$work/post.lua" \
    "https://localhost:$PORT/mutate" > "$work/$name-held.txt"
  curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^registry_resolver_connections_(refused_total|open)' > "$work/$name-metrics.txt" || true
  wait "$holder"
  kill "$server"
  wait "$server" 2>/dev/null || true
}

bench after "$bin"
if [ -n "${BEFORE:-}" ]; then bench before "$BEFORE"; fi

python3 - "$work" "$HOLD" "$DURATION" "$CONNECTIONS" "${BEFORE:+before}" <<'PY'
import json, sys
sys.path.insert(0, "benches")
from wrk_output import Run
work, hold, duration, conns, before = sys.argv[1:]
print(f"/mutate, wrk 1 thread x {conns} keep-alive TLS connections, {duration} each; "
      f"{hold} idle connections held from 127.0.0.2\n")
print("| build | while | req/s | p50 ms | p99 ms | non-2xx | socket errors |")
print("|---|---|---:|---:|---:|---:|---|")
for name in ["after"] + ([before] if before else []):
    for phase in ["alone", "held"]:
        r = Run(f"{work}/{name}-{phase}.txt")
        label = "nothing else" if phase == "alone" else f"{hold} idle held"
        print(f"| {name} | {label} | {r.rps:,.0f} | {r.p50:.2f} | {r.p99:.2f} | {r.non2xx} | {r.socket_errors or '-'} |")
for name in ["after"] + ([before] if before else []):
    holder = json.load(open(f"{work}/{name}-holder.json"))
    ready = open(f"{work}/{name}-ready.txt").read().strip()
    print(f"\n{name}: holder {holder}; /readyz while held: {ready}")
    print(open(f"{work}/{name}-metrics.txt").read().strip())
PY
