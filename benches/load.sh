#!/usr/bin/env bash
# Load benchmark: registry-resolver's /mutate against a no-op responder built
# on the same HTTPS stack that returns a canned response of the same size,
# side by side in one run, over TLS keep-alive connections.
#
#   benches/load.sh                      # defaults below
#   DURATION=30s CONNECTIONS=64 benches/load.sh
#
# Needs wrk (apt-get install wrk). Everything listens on 127.0.0.1 and stops
# when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18443}
NOOP_PORT=${NOOP_PORT:-18444}
ADMIN_PORT=${ADMIN_PORT:-18080}

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
cargo build --quiet --release --locked --bin registry-resolver --example noop-responder

# shellcheck source=benches/common.sh
source benches/common.sh
$bin serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --data-dir "$work/data" --certs-dir "$work/certs" --admin-token bench --log-level warn &
pids+=($!)
wait_ready "$ADMIN_PORT"
add_demo_record "$PORT" bench

review=benches/review-deployment.json
# The canned response is the real one, so both sides send the same bytes.
curl -sf --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' \
  "https://localhost:$PORT/mutate" --data-binary "@$review" > "$work/response.json"
grep -q '"patch"' "$work/response.json" || { echo "the review was not mutated" >&2; exit 1; }

target/release/examples/noop-responder "127.0.0.1:$NOOP_PORT" "$work/certs/tls.crt" "$work/certs/tls.key" "$work/response.json" 2>/dev/null &
pids+=($!)
sleep 0.5

write_post_script "$review"

run() { # name port
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/post.lua" "https://localhost:$2/mutate" > "$work/$1.txt"
}
# Warm both, then alternate so drift on the box hits both sides alike.
wrk -t1 -c4 -d2s -s "$work/post.lua" "https://localhost:$NOOP_PORT/mutate" >/dev/null
wrk -t1 -c4 -d2s -s "$work/post.lua" "https://localhost:$PORT/mutate" >/dev/null
for round in $(seq "$ROUNDS"); do
  run "noop-$round" "$NOOP_PORT"
  run "resolver-$round" "$PORT"
done

# Pinning with a warm digest cache: the record now pins tags, and its
# "registry" is the no-op responder answering manifest HEADs with a digest.
ca=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$work/certs/ca.crt")
curl -sf --cacert "$work/certs/ca.crt" -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' \
  -X PUT "https://localhost:$PORT/api/v1/registries/demo?verify=false" \
  -d "{\"server\":\"https://localhost:$NOOP_PORT\",\"username\":\"robot\",\"password\":\"pw\",\"namespaces\":[\"team-a\"],\"defaultFor\":[\"team-a\"],\"pinDigests\":true,\"tls\":{\"caBundle\":$ca}}" >/dev/null
curl -sf --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' \
  "https://localhost:$PORT/mutate" --data-binary "@$review" > "$work/pinned.json"
grep -q 'sha256:5b0bcabd' "$work/pinned.json" || { echo "pinning did not happen: $(cat "$work/pinned.json")" >&2; exit 1; }
for round in $(seq "$ROUNDS"); do
  run "pinned-$round" "$PORT"
done

python3 - "$work" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$THREADS" "$(wc -c < "$review")" "$(wc -c < "$work/response.json")" "$(wc -c < "$work/pinned.json")" <<'PY'
import sys
work, rounds, duration, conns, threads, req_bytes, resp_bytes, pinned_bytes = sys.argv[1:]
rounds = int(rounds)
sys.path.insert(0, "benches")
from wrk_output import clean
def parse(name):
    run = clean(f"{work}/{name}.txt", name)
    return run.rps, run.p50, run.p99
labels = {"noop": "no-op (same stack)", "resolver": "registry-resolver /mutate",
          "pinned": "registry-resolver /mutate, pinning (warm cache)"}
print(f"wrk -t{threads} -c{conns} -d{duration}, request {req_bytes} B, response {resp_bytes} B "
      f"({pinned_bytes} B pinned), {rounds} alternating rounds")
print()
print("| round | responder | requests/s | p50 (ms) | p99 (ms) |")
print("|---|---|---:|---:|---:|")
means = {}
for side in ("noop", "resolver", "pinned"):
    total = [0.0, 0.0, 0.0]
    for r in range(1, rounds + 1):
        rps, p50, p99 = parse(f"{side}-{r}")
        print(f"| {r} | {labels[side]} | {rps:,.0f} | {p50:.3f} | {p99:.3f} |")
        total = [t + v / rounds for t, v in zip(total, (rps, p50, p99))]
    means[side] = total
n = means["noop"]
print()
for side in ("resolver", "pinned"):
    s = means[side]
    print(f"{labels[side]} vs no-op, mean over rounds: throughput ratio {s[0] / n[0]:.2f} (target >= 0.8), "
          f"p99 ratio {s[2] / n[2]:.2f} (target <= 1.5), p50 ratio {s[1] / n[1]:.2f}")
PY
