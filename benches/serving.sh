#!/usr/bin/env bash
# The serving path against outside baselines, in one run: registry-resolver's
# /mutate, nginx answering the same response bytes (the ceiling for "TLS,
# HTTP/1.1, a fixed answer"), kube-rs's examples/admission_controller (the
# field's reference admission webhook: axum + rustls, adds one label), and
# our own same-stack no-op responder. One server at a time on core 0, wrk
# (one thread, keep-alive TLS connections) on core 1, rounds alternating so
# drift on the box hits every side alike.
#
#   benches/serving.sh
#   KUBE_RS_EXAMPLE=/path/to/admission_controller DURATION=10s ROUNDS=3 benches/serving.sh
#   BEFORE=/path/to/older/registry-resolver benches/serving.sh   # before/after
#   LOG_LEVEL=warn benches/serving.sh   # our servers' --log-level (default: info,
#                                       # the binary's default, as users run it)
#
# KUBE_RS_EXAMPLE is optional (that side is skipped without it); to build it:
#   git clone https://github.com/kube-rs/kube && cd kube &&
#   cargo build --release --example admission_controller -p kube-examples
# Needs wrk, nginx (apt-get install wrk nginx-light) and taskset. Everything
# listens on 127.0.0.1 and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-3}
LOG_LEVEL=${LOG_LEVEL:-info}
# SERVER_CPU= (empty) leaves the servers unpinned, sharing both cores with wrk.
SERVER_CPU=${SERVER_CPU-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BASE_PORT=${BASE_PORT:-18450}

for tool in wrk nginx taskset; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
cargo build --quiet --release --locked --bin registry-resolver --example noop-responder

# shellcheck source=benches/common.sh
source benches/common.sh
review=benches/review-deployment.json
cert=$work/certs/tls.crt
key=$work/certs/tls.key

pin=()
[[ -n "$SERVER_CPU" ]] && pin=(taskset -c "$SERVER_CPU")

# registry-resolver, with the record the review resolves against.
start_resolver() { # binary port data-dir
  "${pin[@]}" "$1" serve --listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$(($2 + 10))" \
    --data-dir "$3" --certs-dir "$work/certs" --admin-token bench --log-level "$LOG_LEVEL" 2>>"$work/resolver-$2.log" &
  pids+=($!)
  wait_for_port "$2"
  add_demo_record "$2" bench
}
resolver_port=$BASE_PORT
start_resolver $bin "$resolver_port" "$work/data"
curl -sf --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' \
  "https://localhost:$resolver_port/mutate" --data-binary "@$review" > "$work/response.json"
grep -q '"patch"' "$work/response.json" || { echo "the review was not mutated" >&2; exit 1; }

# nginx: one worker, the same response bytes, no access log.
nginx_port=$((BASE_PORT + 1))
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    location = /mutate {
      default_type application/json;
      client_max_body_size 4m;
      return 200 '$(cat "$work/response.json")';
    }
  }
}
EOF
"${pin[@]}" nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
pids+=($!)
wait_for_port "$nginx_port"

# Our same-stack no-op.
noop_port=$((BASE_PORT + 2))
"${pin[@]}" target/release/examples/noop-responder "127.0.0.1:$noop_port" "$cert" "$key" "$work/response.json" 2>/dev/null &
pids+=($!)
wait_for_port "$noop_port"

sides=(nginx resolver noop)
declare -A port=([nginx]=$nginx_port [resolver]=$resolver_port [noop]=$noop_port)
# BEFORE: another build of registry-resolver (say, main's) beside this one.
if [[ -n "${BEFORE:-}" ]]; then
  port[before]=$((BASE_PORT + 4))
  start_resolver "$BEFORE" "${port[before]}" "$work/data-before"
  sides+=(before)
fi
if [[ -n "${KUBE_RS_EXAMPLE:-}" ]]; then
  mkdir -p "$work/kube"
  cp "$cert" "$work/kube/admission-controller-tls.crt"
  cp "$key" "$work/kube/admission-controller-tls.key"
  (cd "$work/kube" && RUST_LOG=warn ADMISSION_PRIVATE_IP=127.0.0.1 exec "${pin[@]}" "$KUBE_RS_EXAMPLE" >/dev/null 2>&1) &
  pids+=($!)
  # The example listens on 8443.
  port[kube-rs]=8443
  wait_for_port 8443
  sides+=(kube-rs)
fi

write_post_script "$review"

run() { # name port duration
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$3" --latency -s "$work/post.lua" "https://localhost:$2/mutate"
}
for side in "${sides[@]}"; do run "$side" "${port[$side]}" 2s >/dev/null; done
for round in $(seq "$ROUNDS"); do
  for side in "${sides[@]}"; do run "$side" "${port[$side]}" "$DURATION" > "$work/$side-$round.txt"; done
done

python3 - "$work" "$ROUNDS" "$DURATION" "$CONNECTIONS" "${sides[*]}" "$SERVER_CPU" "$CLIENT_CPU" "$LOG_LEVEL" <<'PY'
import sys
work, rounds, duration, conns, sides = sys.argv[1:6]
rounds, sides = int(rounds), sides.split()
sys.path.insert(0, "benches")
from wrk_output import clean
def parse(name):
    run = clean(f"{work}/{name}.txt", name)
    return run.rps, run.p50, run.p99
labels = {"nginx": "nginx (same response bytes)", "resolver": "registry-resolver /mutate",
          "before": "registry-resolver /mutate, BEFORE build",
          "noop": "no-op (our stack)", "kube-rs": "kube-rs examples/admission_controller"}
placement = f"servers on core {sys.argv[6]}" if sys.argv[6] else "servers unpinned"
print(f"wrk -t1 -c{conns} -d{duration} on core {sys.argv[7]}, {placement}, {rounds} alternating rounds, registry-resolver at --log-level {sys.argv[8]}")
print()
print("| responder | requests/s (mean) | p50 ms | p99 ms | rounds |")
print("|---|---:|---:|---:|---|")
means = {}
for side in sides:
    runs = [parse(f"{side}-{r}") for r in range(1, rounds + 1)]
    mean = [sum(v) / rounds for v in zip(*runs)]
    means[side] = mean
    print(f"| {labels[side]} | {mean[0]:,.0f} | {mean[1]:.3f} | {mean[2]:.3f} | "
          + ", ".join(f"{r[0]:,.0f}" for r in runs) + " |")
print()
r = means["resolver"]
for side in sides:
    if side != "resolver":
        b = means[side]
        print(f"/mutate vs {labels[side]}: throughput {r[0] / b[0]:.2f}x, p99 {r[2] / b[2]:.2f}x")
PY
