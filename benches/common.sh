# Sourced by the benchmark scripts (after they build): a scratch directory
# removed at exit, background processes (add their pids to `pids`) stopped
# at exit, the release binary as $bin, and a CA with a serving certificate
# for localhost in $work/certs.
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bin=target/release/registry-resolver
"$bin" certs --out-dir "$work/certs" 2>/dev/null

# $work/post.lua: wrk posts the AdmissionReview in $1 as JSON.
write_post_script() {
  cat > "$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$1", "rb")
wrk.body = f:read("*a")
f:close()
EOF
}

# Waits (up to 10 s) until something accepts connections on 127.0.0.1:$1.
wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

# Waits (up to 10 s) until the server's admin listener on 127.0.0.1:$1 says ready.
wait_ready() {
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "not ready on 127.0.0.1:$1" >&2
  exit 1
}

# Creates the record the review resolves against, on the server at
# https://localhost:$1 whose admin token is $2.
add_demo_record() {
  curl -sf --cacert "$work/certs/ca.crt" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    "https://localhost:$1/api/v1/registries?verify=false" \
    -d '{"name":"demo","server":"dockerhub.qingcloud.com","username":"robot","password":"pw","namespaces":["team-a"],"defaultFor":["team-a"]}' >/dev/null
}
