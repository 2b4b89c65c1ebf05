#!/usr/bin/env bash
# The load benchmark (loadbench/README.md): every server mode under wrk, five interleaved
# rounds, medians into BENCHMARKS.md between <!-- bench:load:begin --> and
# <!-- bench:load:end -->.
#
#   bash loadbench/run.sh                                   # the full run (about 15 minutes)
#   SCENARIOS="repeated distinct" MODES="noauth layer" bash loadbench/run.sh
#   DURATION=2 ROUNDS=1 bash loadbench/run.sh               # a smoke run of the script
#
# Knobs (environment): DURATION (s, measured, default 6), WARMUP (s, default 2), SHIFT_WARMUP
# (s, the shift scenario's cache-filling run, default 6), ROUNDS (5),
# CONNECTIONS (32), SCENARIOS, MODES, PORT (18480), JWKS_PORT (18481), SERVER_CORE (0),
# WRK_CORE (1), WRITE (1; 0 prints the report without touching BENCHMARKS.md).
set -eEuo pipefail
trap 'echo "run.sh: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

DURATION=${DURATION:-6}
WARMUP=${WARMUP:-2}
# The shift scenario's warm-up fills the cache whatever DURATION is: its premise is a full cache.
SHIFT_WARMUP=${SHIFT_WARMUP:-6}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=1
ALL_SCENARIOS="repeated distinct shift overflow"
ALL_MODES="noauth floor layer layer-outer tower-oauth2-resource-server"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
MODES=${MODES:-$ALL_MODES}
PORT=${PORT:-18480}
JWKS_PORT=${JWKS_PORT:-18481}
SERVER_CORE=${SERVER_CORE:-0}
WRK_CORE=${WRK_CORE:-1}
WRITE=${WRITE:-1}
# 20,000 per algorithm (overflow sends them all); 10,000 for distinct and shift.
TOKENS=20000
DISTINCT=10000
CACHE_10K=10000

die() {
  echo "run.sh: FAILED: $*" >&2
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
[[ $(nproc) -ge 2 ]] || die "needs two cores (the server on one, wrk on the other); nproc says $(nproc)"
CLK_TCK=$(getconf CLK_TCK)

for s in $SCENARIOS; do
  [[ " $ALL_SCENARIOS " == *" $s "* ]] || die "unknown scenario $s (known: $ALL_SCENARIOS)"
done
for m in $MODES; do
  case $m in
    jwt-authorizer) echo "note: jwt-authorizer is left out (axum 0.7 only; see loadbench/README.md)" ;;
    *) [[ " $ALL_MODES " == *" $m "* ]] || die "unknown mode $m (known: $ALL_MODES)" ;;
  esac
done

# --- build and tokens --------------------------------------------------------------------
echo "== cargo build --release (loadbench)"
(cd "$here" && cargo build --release --quiet) || die "the build failed"
BIN=$here/target/release/loadbench
DATA=$here/target/loadbench-data
OUT=$here/target/loadbench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf '# round\tscenario\talg\tserver\treq_per_s\tp99_us\tcpu_us_per_request\trequests\n' >"$RESULTS"

echo "== generating $TOKENS ES256 and $TOKENS RS256 tokens"
rm -rf "$DATA"
"$BIN" gen --dir "$DATA" --count "$TOKENS" --issuer "http://127.0.0.1:$JWKS_PORT" || die "token generation failed"
for alg in ES256 RS256; do
  all=$DATA/${alg,,}.tokens
  head -n 1 "$all" >"$DATA/repeated-$alg"
  head -n "$DISTINCT" "$all" >"$DATA/distinct-$alg"
  cp "$all" "$DATA/overflow-$alg"
done
head -n "$DISTINCT" "$DATA/es256.tokens" >"$DATA/shift-warm"
tail -n "$DISTINCT" "$DATA/rs256.tokens" >"$DATA/shift-RS256"

# --- servers -----------------------------------------------------------------------------
SERVER_PID=
stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

mode_of() { case $1 in layer-outer) echo layer-outer ;; layer*) echo layer ;; *) echo "$1" ;; esac; }
cache_of() { case $1 in layer-cache-10k) echo "$CACHE_10K" ;; layer-cache-off) echo 0 ;; *) echo "" ;; esac; }
servers_for() {
  case $1 in
    repeated) echo "noauth layer layer-outer" ;;
    distinct) echo "layer-cache-off layer floor tower-oauth2-resource-server" ;;
    shift | overflow) echo "layer-cache-10k layer-cache-off" ;;
  esac
}
algs_for() { if [[ $1 == shift ]]; then echo RS256; else echo "ES256 RS256"; fi; }
wanted() { [[ " $MODES " == *" $(mode_of "$1") "* ]]; }

start_server() { # server-id log
  local mode cache
  mode=$(mode_of "$1")
  cache=$(cache_of "$1")
  : >"$2" # exists before the server writes to it, so the readiness poll can read it
  taskset -c "$SERVER_CORE" "$BIN" serve --dir "$DATA" --mode "$mode" --port "$PORT" \
    ${cache:+--cache "$cache"} >"$2" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    grep -q '^loadbench: ready' "$2" && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      SERVER_PID=
      die "server $1 did not start:
$(cat "$2")"
    fi
    sleep 0.1
  done
  die "server $1 not ready after 30 s:
$(cat "$2")"
}

# The server's utime + stime, in clock ticks (/proc/PID/stat fields 14 and 15; the fields
# are counted after the command name, which may hold spaces).
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}

# Runs wrk for $1 seconds over token file $2, output in $3; sets REQUESTS, DURATION_US, P99_US.
run_wrk() {
  taskset -c "$WRK_CORE" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1"s --latency \
    -s "$here/tokens.lua" "http://127.0.0.1:$PORT/items" -- "$2" >"$3" 2>&1 ||
    die "wrk failed ($3):
$(cat "$3")"
  if grep -q -e 'Non-2xx or 3xx responses' -e 'Socket errors' "$3"; then
    die "wrk saw errors ($3):
$(cat "$3")"
  fi
  local line kv
  line=$(grep '^LOADBENCH ' "$3") || die "no LOADBENCH line from tokens.lua in $3"
  REQUESTS=0 DURATION_US=0 P99_US=0
  for kv in ${line#LOADBENCH }; do
    case ${kv%%=*} in
      requests) REQUESTS=${kv#*=} ;;
      duration_us) DURATION_US=${kv#*=} ;;
      p99_us) P99_US=${kv#*=} ;;
      connect | read | write | status | timeout)
        [[ ${kv#*=} -eq 0 ]] || die "wrk counted ${kv%%=*} errors: ${kv#*=} ($3)" ;;
    esac
  done
  [[ $REQUESTS -gt 0 ]] || die "wrk completed no request ($3)"
}

measure() { # round scenario alg server
  local round=$1 scenario=$2 alg=$3 server=$4
  local tag=r$round-$scenario-$alg-$server
  local tokens=$DATA/$scenario-$alg
  start_server "$server" "$OUT/$tag.server.log"
  if [[ $scenario == shift ]]; then
    # Fill the cache with ES256 tokens; the measured RS256 tokens are new to it.
    run_wrk "$SHIFT_WARMUP" "$DATA/shift-warm" "$OUT/$tag.warm.txt"
    [[ $REQUESTS -ge $DISTINCT ]] ||
      die "the shift warm-up sent $REQUESTS requests, fewer than its $DISTINCT tokens: the cache is not full (raise SHIFT_WARMUP)"
  elif [[ $WARMUP -gt 0 ]]; then
    run_wrk "$WARMUP" "$tokens" "$OUT/$tag.warm.txt"
  fi
  local before after
  before=$(cpu_ticks "$SERVER_PID")
  run_wrk "$DURATION" "$tokens" "$OUT/$tag.wrk.txt"
  after=$(cpu_ticks "$SERVER_PID")
  kill -0 "$SERVER_PID" 2>/dev/null || die "server $server died during the run"
  stop_server
  local rps cpu
  rps=$(awk -v n="$REQUESTS" -v us="$DURATION_US" 'BEGIN { printf "%.1f", n / (us / 1e6) }')
  cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$scenario" "$alg" "$server" "$rps" "$P99_US" "$cpu" "$REQUESTS" >>"$RESULTS"
  printf '  round %s %-9s %s %-29s %9s req/s  p99 %7s us  %8s CPU us/req\n' \
    "$round" "$scenario" "$alg" "$server" "$rps" "$P99_US" "$cpu"
}

# --- the rounds --------------------------------------------------------------------------
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $ROUNDS round(s): scenarios [$SCENARIOS], modes [$MODES], ${DURATION}s measured after ${WARMUP}s warm-up"
for round in $(seq 1 "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    for alg in $(algs_for "$scenario"); do
      # Odd rounds run the servers in their listed order, even rounds in reverse, so no
      # server always runs first (or right after the same neighbour) in its pair.
      servers=$(servers_for "$scenario")
      if ((round % 2 == 0)); then servers=$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' '); fi
      for server in $servers; do
        wanted "$server" || continue
        measure "$round" "$scenario" "$alg" "$server"
      done
    done
  done
done
[[ $(grep -vc '^#' "$RESULTS" || true) -gt 0 ]] || die "nothing was measured (check SCENARIOS and MODES)"

# --- the report --------------------------------------------------------------------------
commit=$(git -C "$root" rev-parse --short HEAD)
if [[ -n $(git -C "$root" status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md') ]]; then
  commit="$commit (with uncommitted changes)"
fi
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
# `wrk -v` prints its version, then its usage, and exits 1.
wrk_version=$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2 || true)
info=(
  --info "**Date (UTC):** $(date -u '+%Y-%m-%d %H:%M'); **commit:** \`$commit\`"
  --info "**Machine:** ${cpu_model:-unknown CPU}, $(nproc) cores; load average at start $load_at_start (other jobs may share the machine)"
  --info "**wrk:** ${wrk_version:-wrk}, \`-t$THREADS -c$CONNECTIONS -d${DURATION}s --latency\` with \`loadbench/tokens.lua\`, after a ${WARMUP} s warm-up run of the same tokens per server (\`shift\`: a ${SHIFT_WARMUP} s run of other, ES256 tokens instead); a new server process per run"
  --info "**Pinning:** the server on core $SERVER_CORE, wrk on core $WRK_CORE (\`taskset\`); every server on a one-thread tokio runtime; the JWKS and OIDC discovery served by the same process on another loopback port"
  --info "**Tokens:** ES256 (P-256) and RS256 (2048-bit) keys with kids, $TOKENS tokens per algorithm with distinct \`sub\` and \`jti\`; every mode answered 200 to good tokens and 401 to forged, tampered, unknown-kid, wrong-audience, wrong-issuer, expired and malformed ones before it was measured (\`noauth\` excepted)"
  --info "**Rounds:** $ROUNDS, interleaved (each round runs every server once, even rounds in reverse order); medians and per-round paired ratios reported"
  --info "**Left out:** jwt-authorizer 0.15: it is built on axum 0.7 and cannot wrap an axum 0.8 router (see [loadbench/README.md](loadbench/README.md#peers))"
)
if [[ $DURATION -lt 6 || $ROUNDS -lt 3 ]]; then
  info+=(--info "**Smoke run** (DURATION=$DURATION, ROUNDS=$ROUNDS): it shows the script works end to end; the figures are too short-lived to judge a target by. Run \`bash loadbench/run.sh\` for the real figures.")
fi
if [[ $SCENARIOS != "$ALL_SCENARIOS" || $MODES != "$ALL_MODES" ]]; then
  info+=(--info "**Subset run:** SCENARIOS=\"$SCENARIOS\" MODES=\"$MODES\"")
fi

target_md=$root/BENCHMARKS.md
if [[ $WRITE != 1 ]]; then
  cp "$target_md" "$OUT/BENCHMARKS.md"
  target_md=$OUT/BENCHMARKS.md
fi
echo "== report"
"$BIN" report --results "$RESULTS" --benchmarks "$target_md" "${info[@]}" || die "the report failed"
echo "== raw results and wrk outputs in $OUT"
