#!/usr/bin/env bash
# Soak: the release binary under steady admission load for a long while,
# with records written and deleted beside it, sampling its memory and open
# file descriptors; both must stay flat, and latency must not drift.
#
#   benches/soak.sh                  # 10 minutes
#   DURATION=60 benches/soak.sh      # seconds
#
# Needs wrk (apt-get install wrk). Everything listens on 127.0.0.1 and stops
# when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-30}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-18543}
ADMIN_PORT=${ADMIN_PORT:-18180}

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
cargo build --quiet --release --locked --bin registry-resolver

# shellcheck source=benches/common.sh
source benches/common.sh
$bin serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --data-dir "$work/data" --certs-dir "$work/certs" --admin-token soak --log-level warn &
server=$!
pids+=($server)
wait_ready "$ADMIN_PORT"
api() {
  curl -sf --cacert "$work/certs/ca.crt" -H 'Authorization: Bearer soak' -H 'Content-Type: application/json' "$@"
}
api "https://localhost:$PORT/api/v1/registries?verify=false" \
  -d '{"name":"demo","server":"dockerhub.qingcloud.com","username":"robot","password":"pw","namespaces":["team-a"],"defaultFor":["team-a"]}' >/dev/null

# Writes beside the load: a record created and deleted ten times a second.
(
  i=0
  while true; do
    api "https://localhost:$PORT/api/v1/registries?verify=false" \
      -d "{\"name\":\"churn-$((i % 50))\",\"server\":\"churn.example.com\",\"username\":\"u\",\"password\":\"p\",\"namespaces\":[\"team-b\"]}" >/dev/null 2>&1 || true
    api -X DELETE "https://localhost:$PORT/api/v1/registries/churn-$(((i + 25) % 50))" >/dev/null 2>&1 || true
    i=$((i + 1))
    sleep 0.1
  done
) &
pids+=($!)

write_post_script "benches/review-deployment.json"

sample() { # elapsed seconds
  local rss fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
  fds=$(ls "/proc/$server/fd" | wc -l)
  echo "$1 $rss $fds" >> "$work/samples"
}
sample 0
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "https://localhost:$PORT/mutate" > "$work/wrk.txt" &
wrk_pid=$!
pids+=($wrk_pid)
elapsed=0
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep "$SAMPLE"
  elapsed=$((elapsed + SAMPLE))
  kill -0 "$wrk_pid" 2>/dev/null && sample "$elapsed"
done
wait "$wrk_pid" || true
sample "$elapsed"

python3 - "$work" "$DURATION" "$CONNECTIONS" <<'PY'
import sys
work, duration, conns = sys.argv[1:]
sys.path.insert(0, "benches")
from wrk_output import Run
run = Run(f"{work}/wrk.txt")
samples = [tuple(map(int, l.split())) for l in open(f"{work}/samples")]
print(f"soak: {duration} s of /mutate (wrk -c{conns}) with a record created and deleted 10 times a second")
print(f"throughput {run.rps:,.0f}/s, p50 {run.p50:.2f} ms, p99 {run.p99:.2f} ms; "
      f"non-2xx {run.non2xx}; socket errors: {run.socket_errors or 'none'}")
print()
print("| after (s) | RSS (MiB) | open fds |")
print("|---:|---:|---:|")
for t, rss, fds in samples:
    print(f"| {t} | {rss / 1024:.1f} | {fds} |")
PY
