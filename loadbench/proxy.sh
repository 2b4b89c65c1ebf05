#!/usr/bin/env bash
# The sidecar under wrk: `s2s-auth proxy` in front of a plain upstream, beside the upstream
# called directly. Three ways, interleaved rounds (each once, then each again), medians:
#
#   direct        wrk -> upstream                       (no authentication: the baseline)
#   proxy-static  wrk -> s2s-auth proxy -> upstream     (a static token)
#   proxy-jwt     wrk -> s2s-auth proxy -> upstream     (one ES256 JWT verified against a
#                                                       JWKS, repeated: the verified cache)
#
# The upstream is `loadbench serve --mode noauth` (GET /items, body `ok`, one thread), which
# also serves the JWKS the proxy verifies the JWT against (loadbench/README.md). Targets:
# proxy ÷ direct ≥ 0.70 in req/s, for both proxy rows.
#
#   bash loadbench/proxy.sh                       # the full run (about 2 minutes)
#   DURATION=2 ROUNDS=1 bash loadbench/proxy.sh   # a smoke run of the script
#   WRITE=0 bash loadbench/proxy.sh               # print only, BENCHMARKS.md untouched
#
# Knobs (environment): DURATION (s, measured, 6), WARMUP (s, 2), ROUNDS (3), CONNECTIONS
# (32), PORT (upstream, 18490), JWKS_PORT (18491), PROXY_PORT (18492), SERVER_CORES (the
# upstream and the proxy, "0"), WRK_CORE (1), WRITE (1).
#
# Pinning: both servers share SERVER_CORES, wrk gets WRK_CORE, as in run.sh: the sidecar
# runs on the service's own CPU budget, which is what a sidecar costs in a deployment. The
# proxy's tokio runtime gets one worker per core in SERVER_CORES.
set -eEuo pipefail
trap 'echo "proxy.sh: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

DURATION=${DURATION:-6}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=1
PORT=${PORT:-18490}
JWKS_PORT=${JWKS_PORT:-18491}
PROXY_PORT=${PROXY_PORT:-18492}
SERVER_CORES=${SERVER_CORES:-0}
WRK_CORE=${WRK_CORE:-1}
WRITE=${WRITE:-1}
MODES="direct proxy-static proxy-jwt"

die() {
  echo "proxy.sh: FAILED: $*" >&2
  exit 1
}

# --- tools -------------------------------------------------------------------------------
install_missing() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "== installing $2 (for $1)"
  [[ $(id -u) -eq 0 ]] || die "$1 is missing and only root can apt-get install $2"
  apt-get install -y "$2" >/dev/null || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; } ||
    die "apt-get install $2 failed"
}
install_missing wrk wrk
install_missing taskset util-linux
install_missing curl curl
[[ $(nproc) -ge 2 ]] || die "needs two cores (the servers on one, wrk on the other); nproc says $(nproc)"
CLK_TCK=$(getconf CLK_TCK)

# --- builds, tokens, config --------------------------------------------------------------
# One target directory and one release profile for both builds, so the dependencies they
# share (aws-lc-sys above all) are compiled once.
export CARGO_TARGET_DIR=$here/target
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
echo "== cargo build --release (loadbench, and s2s-auth with --features cli)"
(cd "$here" && cargo build --release --quiet) || die "the loadbench build failed"
(cd "$root" && cargo build --release --quiet --features cli --bin s2s-auth) || die "the s2s-auth build failed"
LOADBENCH=$CARGO_TARGET_DIR/release/loadbench
PROXY=$CARGO_TARGET_DIR/release/s2s-auth
DATA=$CARGO_TARGET_DIR/proxy-data
OUT=$CARGO_TARGET_DIR/proxy-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf '# round\tmode\treq_per_s\tp99_us\tproxy_cpu_us\tupstream_cpu_us\trequests\n' >"$RESULTS"

echo "== tokens and the proxy config"
rm -rf "$DATA"
"$LOADBENCH" gen --dir "$DATA" --count 1 --issuer "http://127.0.0.1:$JWKS_PORT" >/dev/null || die "token generation failed"
head -n 1 "$DATA/es256.tokens" >"$DATA/jwt.token"
# A static token of 43 url-safe characters (256 random bits), like `s2s-auth token new`.
head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$DATA/static.token"
echo >>"$DATA/static.token"
audience=$(sed -n 's/.*"audience": *"\([^"]*\)".*/\1/p' "$DATA/meta.json")
[[ -n $audience ]] || die "no audience in $DATA/meta.json"
cat >"$DATA/proxy.yaml" <<EOF
proxy:
  upstreamTimeoutSeconds: 30
s2s:
  serviceId: loadbench
  routes:
    - path: /items
      methods: [GET]
      allow: [static, jwks]
backend:
  auth:
    externalAccess:
      - type: static
        options: { token: $(cat "$DATA/static.token"), subject: wrk }
      - type: jwks
        options:
          url: http://127.0.0.1:$JWKS_PORT/jwks.json
          issuer: http://127.0.0.1:$JWKS_PORT
          audience: $audience
          algorithm: [ES256]
EOF

# --- servers -----------------------------------------------------------------------------
UPSTREAM_PID=
PROXY_PID=
stop_servers() {
  for pid in $PROXY_PID $UPSTREAM_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PROXY_PID= UPSTREAM_PID=
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

wait_for() { # pid log pattern what
  for _ in $(seq 1 600); do
    grep -q "$3" "$2" && return 0
    kill -0 "$1" 2>/dev/null || die "$4 did not start:
$(cat "$2")"
    sleep 0.1
  done
  die "$4 not ready after 60 s:
$(cat "$2")"
}

echo "== starting the upstream (core $SERVER_CORES) and the proxy (core $SERVER_CORES)"
: >"$OUT/upstream.log"
taskset -c "$SERVER_CORES" "$LOADBENCH" serve --dir "$DATA" --mode noauth --port "$PORT" >"$OUT/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_for "$UPSTREAM_PID" "$OUT/upstream.log" '^loadbench: ready' "the upstream"

workers=$(taskset -c "$SERVER_CORES" nproc)
: >"$OUT/proxy.log"
# Audit events (a JSON line per request) go to a file, as they would in a deployment;
# it is cut to its first lines after the run.
# --threads 1 (the servers get one core): a current-thread runtime, like the upstream's.
taskset -c "$SERVER_CORES" "$PROXY" proxy --threads "$workers" --config "$DATA/proxy.yaml" \
  --listen "127.0.0.1:$PROXY_PORT" --upstream "http://127.0.0.1:$PORT" >"$OUT/proxy.log" 2>"$OUT/proxy.audit.jsonl" &
PROXY_PID=$!
wait_for "$PROXY_PID" "$OUT/proxy.log" '^listening on ' "the proxy"

# Checked before it is measured: a proxy that lets everything through is never benchmarked.
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[[ $(status "http://127.0.0.1:$PROXY_PORT/items" -H "Authorization: Bearer $(cat "$DATA/static.token")") == 200 ]] ||
  die "the static token was not let through"
[[ $(status "http://127.0.0.1:$PROXY_PORT/items" -H "Authorization: Bearer $(cat "$DATA/jwt.token")") == 200 ]] ||
  die "the JWT was not let through"
[[ $(status "http://127.0.0.1:$PROXY_PORT/items") == 401 ]] || die "no credential was not refused with 401"
[[ $(status "http://127.0.0.1:$PROXY_PORT/items" -H "Authorization: Bearer $(cat "$DATA/static.token")x") == 401 ]] ||
  die "a wrong static token was not refused with 401"
echo "== the proxy answers 200 to both credentials and 401 to none or a wrong one"

# The process's utime + stime, in clock ticks (/proc/PID/stat fields 14 and 15).
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}

# Runs wrk for $1 seconds against $2 with token file $3, output in $4; sets REQUESTS,
# DURATION_US, P99_US.
run_wrk() {
  taskset -c "$WRK_CORE" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1"s --latency \
    -s "$here/tokens.lua" "$2" -- "$3" >"$4" 2>&1 || die "wrk failed ($4):
$(cat "$4")"
  if grep -q -e 'Non-2xx or 3xx responses' -e 'Socket errors' "$4"; then
    die "wrk saw errors ($4):
$(cat "$4")"
  fi
  local line kv
  line=$(grep '^LOADBENCH ' "$4") || die "no LOADBENCH line from tokens.lua in $4"
  REQUESTS=0 DURATION_US=0 P99_US=0
  for kv in ${line#LOADBENCH }; do
    case ${kv%%=*} in
      requests) REQUESTS=${kv#*=} ;;
      duration_us) DURATION_US=${kv#*=} ;;
      p99_us) P99_US=${kv#*=} ;;
      connect | read | write | status | timeout)
        [[ ${kv#*=} -eq 0 ]] || die "wrk counted ${kv%%=*} errors: ${kv#*=} ($4)" ;;
    esac
  done
  [[ $REQUESTS -gt 0 ]] || die "wrk completed no request ($4)"
}

measure() { # round mode
  local round=$1 mode=$2 url tokens
  case $mode in
    direct) url=http://127.0.0.1:$PORT/items tokens=$DATA/static.token ;;
    proxy-static) url=http://127.0.0.1:$PROXY_PORT/items tokens=$DATA/static.token ;;
    proxy-jwt) url=http://127.0.0.1:$PROXY_PORT/items tokens=$DATA/jwt.token ;;
  esac
  local tag=r$round-$mode
  if [[ $WARMUP -gt 0 ]]; then run_wrk "$WARMUP" "$url" "$tokens" "$OUT/$tag.warm.txt"; fi
  local p0 p1 u0 u1
  p0=$(cpu_ticks "$PROXY_PID") u0=$(cpu_ticks "$UPSTREAM_PID")
  run_wrk "$DURATION" "$url" "$tokens" "$OUT/$tag.wrk.txt"
  p1=$(cpu_ticks "$PROXY_PID") u1=$(cpu_ticks "$UPSTREAM_PID")
  kill -0 "$PROXY_PID" 2>/dev/null || die "the proxy died during the run"
  kill -0 "$UPSTREAM_PID" 2>/dev/null || die "the upstream died during the run"
  local rps pcpu ucpu
  rps=$(awk -v n="$REQUESTS" -v us="$DURATION_US" 'BEGIN { printf "%.1f", n / (us / 1e6) }')
  pcpu=$(awk -v t=$((p1 - p0)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
  ucpu=$(awk -v t=$((u1 - u0)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$rps" "$P99_US" "$pcpu" "$ucpu" "$REQUESTS" >>"$RESULTS"
  printf '  round %s %-13s %9s req/s  p99 %7s us  proxy %6s CPU us/req  upstream %6s CPU us/req\n' \
    "$round" "$mode" "$rps" "$P99_US" "$pcpu" "$ucpu"
}

# --- the rounds --------------------------------------------------------------------------
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $ROUNDS round(s), ${DURATION}s measured after ${WARMUP}s warm-up, -c$CONNECTIONS"
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    measure "$round" "$mode"
  done
done
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)
audit_lines=$(wc -l <"$OUT/proxy.audit.jsonl")
head -n 20 "$OUT/proxy.audit.jsonl" >"$OUT/proxy.audit.head.jsonl" && rm -f "$OUT/proxy.audit.jsonl"
stop_servers

# --- the report --------------------------------------------------------------------------
median() { # mode column
  awk -F'\t' -v m="$1" -v c="$2" '!/^#/ && $2 == m { print $c }' "$RESULTS" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
per_round() { # mode
  awk -F'\t' -v m="$1" '!/^#/ && $2 == m { printf "%s%.0f", sep, $3; sep = ", " }' "$RESULTS"
}
direct_rps=$(median direct 3)
commit=$(git -C "$root" rev-parse --short HEAD)
if [[ -n $(git -C "$root" status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md') ]]; then
  commit="$commit (with uncommitted changes)"
fi
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
wrk_version=$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2 || true)
{
  echo "<!-- bench:proxy:begin -->"
  echo "Measured by \`bash loadbench/proxy.sh\` (written by it; do not edit by hand)."
  echo
  echo "| mode | req/s (median) | per round | ÷ direct | p99 (µs) | proxy CPU µs/req | upstream CPU µs/req |"
  echo "|---|---:|---|---:|---:|---:|---:|"
  verdict=PASS
  for mode in $MODES; do
    rps=$(median "$mode" 3)
    ratio=$(awk -v a="$rps" -v b="$direct_rps" 'BEGIN { printf "%.2f", a / b }')
    if [[ $mode != direct ]] && awk -v r="$ratio" 'BEGIN { exit !(r < 0.70) }'; then verdict=MISS; fi
    printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "$mode" "$rps" "$(per_round "$mode")" "$ratio" \
      "$(median "$mode" 4)" "$(median "$mode" 5)" "$(median "$mode" 6)"
  done
  echo
  echo "**Target** proxy ÷ direct ≥ 0.70 (req/s) for both proxy rows: **$verdict**."
  echo
  echo "- **Date (UTC):** $(date -u '+%Y-%m-%d %H:%M'); **commit:** \`$commit\`"
  echo "- **Machine:** ${cpu_model:-unknown CPU}, $(nproc) cores; load average $load_at_start at start, $load_at_end at end (other jobs share the machine)"
  echo "- **wrk:** ${wrk_version:-wrk}, \`-t$THREADS -c$CONNECTIONS -d${DURATION}s --latency\` with \`loadbench/tokens.lua\`, after a ${WARMUP} s warm-up run per mode and round; $ROUNDS interleaved rounds, medians"
  echo "- **Pinning:** the upstream (\`loadbench serve --mode noauth\`, one thread) and the proxy (\`--threads $workers\`) share core(s) $SERVER_CORES; wrk on core $WRK_CORE (\`taskset\`). Both servers run for the whole measurement"
  echo "- **Credentials:** \`proxy-static\` a 43-character static token; \`proxy-jwt\` one ES256 JWT (iss, aud, exp checked against a JWKS on loopback), the same one every request, so every request after the first is a verified-cache hit"
  echo "- **Audit:** the proxy wrote $audit_lines audit events (one JSON line per request) to a file, as a deployment would"
  if [[ $DURATION -lt 6 || $ROUNDS -lt 3 ]]; then
    echo "- **Smoke run** (DURATION=$DURATION, ROUNDS=$ROUNDS): the figures are too short-lived to judge the target by"
  fi
  echo "<!-- bench:proxy:end -->"
} >"$OUT/report.md"
cat "$OUT/report.md"

if [[ $WRITE == 1 ]]; then
  bench=$root/BENCHMARKS.md
  if grep -q '<!-- bench:proxy:begin -->' "$bench"; then
    awk -v report="$OUT/report.md" '
      /<!-- bench:proxy:begin -->/ { while ((getline line < report) > 0) print line; skip = 1; next }
      /<!-- bench:proxy:end -->/ { skip = 0; next }
      !skip { print }' "$bench" >"$OUT/BENCHMARKS.md.new"
    cp "$OUT/BENCHMARKS.md.new" "$bench"
  else
    {
      echo
      echo "## proxy"
      echo
      cat <<'INTRO'
`s2s-auth proxy` (the sidecar) under wrk on loopback, beside its upstream called directly:
`bash loadbench/proxy.sh` builds both in release, starts the upstream (`loadbench serve
--mode noauth`: `GET /items`, body `ok`) and the proxy, checks that the proxy lets both
credentials through and refuses none or a wrong one (401), then measures the three modes in
interleaved rounds. The ratio compares the sidecar and its service sharing the service's
core with the service alone on it: what putting the sidecar in front costs a deployment.

INTRO
      cat "$OUT/report.md"
    } >>"$bench"
  fi
  echo "== BENCHMARKS.md updated (section \"proxy\")"
fi
echo "== raw results and wrk outputs in $OUT"
