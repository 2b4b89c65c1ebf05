# A private PostgreSQL server for the store tests (tests/store.rs). Sourced by .ci/run;
# usable alone:  source .ci/postgres.sh && cargo test --test store
#
# Sets S2S_TEST_POSTGRES_URL to a fresh database on a server of its own: a new data
# directory in /tmp, a free port on 127.0.0.1, a login with a password (SCRAM), so a
# server already running on the machine (Debian's `main` cluster, or one left behind by an
# earlier run) is neither used nor disturbed. The server is stopped and its directory
# removed when the sourcing shell exits. Installs the server from the Debian archive when
# it is missing (root only). When S2S_TEST_POSTGRES_URL is already set, does nothing.

s2s_pg_start() {
  if [ -n "${S2S_TEST_POSTGRES_URL:-}" ]; then
    echo "PostgreSQL: using the S2S_TEST_POSTGRES_URL already set"
    return 0
  fi

  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL server not found: install it (apt-get install postgresql) or set S2S_TEST_POSTGRES_URL" >&2
      return 1
    fi
    echo "PostgreSQL: installing the server from the Debian archive"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi

  # initdb and postgres refuse to run as root: as root, the server runs as `postgres`.
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
  fi

  S2S_PG_BIN=$bin
  S2S_PG_DIR=$(mktemp -d /tmp/s2s-auth-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$S2S_PG_DIR"
  fi
  trap s2s_pg_stop EXIT

  # The first free port from 55432 (bash's /dev/tcp: a refused connection means free).
  local port=55432
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done

  local password
  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

  # Local (socket) logins are trusted, for the setup below; TCP logins need a password.
  "${as_pg[@]}" "$bin/initdb" --pgdata="$S2S_PG_DIR/data" --username=postgres \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >/dev/null
  "${as_pg[@]}" "$bin/pg_ctl" --pgdata="$S2S_PG_DIR/data" --log="$S2S_PG_DIR/server.log" \
    --wait --silent start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $S2S_PG_DIR -c fsync=off"
  "${as_pg[@]}" "$bin/psql" --host="$S2S_PG_DIR" --port="$port" --username=postgres \
    --dbname=postgres --quiet --set=ON_ERROR_STOP=1 \
    --command="CREATE ROLE s2s_test LOGIN PASSWORD '$password'" \
    --command="CREATE DATABASE s2s_test OWNER s2s_test" >/dev/null

  export S2S_TEST_POSTGRES_URL="postgres://s2s_test:$password@127.0.0.1:$port/s2s_test"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $S2S_PG_DIR)"
}

s2s_pg_stop() {
  if [ -n "${S2S_PG_DIR:-}" ] && [ -d "$S2S_PG_DIR" ]; then
    if [ -f "$S2S_PG_DIR/data/postmaster.pid" ]; then
      local as_pg=()
      if [ "$(id -u)" = 0 ]; then
        as_pg=(runuser -u postgres --)
      fi
      "${as_pg[@]}" "$S2S_PG_BIN/pg_ctl" --pgdata="$S2S_PG_DIR/data" --mode=fast \
        --wait --silent stop || true
    fi
    rm -rf "$S2S_PG_DIR"
  fi
}

s2s_pg_start
