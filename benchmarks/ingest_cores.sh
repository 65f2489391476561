#!/usr/bin/env bash
# The ingest benchmark on a machine with more cores, where PostgreSQL is not installed (the
# device tool's GPU machines: 16 cores). It carries PostgreSQL 15 from this project's Debian 12
# machine and the Python wheels the benchmark needs, starts a throwaway server on port 5432 and
# runs benchmarks/ingest.py against it (JOE_BENCH_PG_PORT picks another port, PYTHON another
# interpreter with its own packages).
#
# Inputs (ignored by git; built on the Debian machine):
#   benchmarks/ingest_cores.sh --bundle   # .pgdev/pg15.tar.xz: the server, its libraries, UTC
#   pip download ... -d .gpuw             # Django, psycopg[binary], celery... for the device's
#                                         # Python (see benchmarks/RESULTS.md, "Ingest")
# Then, on the device: bash benchmarks/ingest_cores.sh [ARGS FOR benchmarks/ingest.py]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--bundle" ]; then
  out=$(mktemp -d)
  mkdir -p "$out/root/usr/lib/postgresql/15/bin" "$out/root/usr/lib/postgresql/15/lib" \
    "$out/root/usr/share/postgresql" "$out/libs" "$out/zoneinfo"
  cp /usr/lib/postgresql/15/bin/{postgres,initdb,pg_ctl} "$out/root/usr/lib/postgresql/15/bin/"
  cp /usr/lib/postgresql/15/lib/*.so "$out/root/usr/lib/postgresql/15/lib/"
  rm -f "$out"/root/usr/lib/postgresql/15/lib/llvmjit*.so  # JIT: LLVM alone is 100 MB
  cp -r /usr/share/postgresql/15 "$out/root/usr/share/postgresql/"
  rm -rf "$out/root/usr/share/postgresql/15/man"
  for f in "$out"/root/usr/lib/postgresql/15/bin/* "$out"/root/usr/lib/postgresql/15/lib/*.so; do
    ldd "$f" | awk '/=>/ {print $3}'
  done | sort -u | grep -v -E 'libc\.so|libm\.so|ld-linux|libresolv|libpthread|libdl|librt|libstdc|libgcc_s' \
    | xargs -I{} cp -L {} "$out/libs/"
  cp -r /usr/share/zoneinfo/UTC /usr/share/zoneinfo/Etc "$out/zoneinfo/"
  mkdir -p .pgdev
  tar -C "$out" -cJf .pgdev/pg15.tar.xz root libs zoneinfo
  rm -rf "$out"
  ls -la .pgdev/pg15.tar.xz
  exit 0
fi

PG=/tmp/pg
rm -rf "$PG" /tmp/pgdata && mkdir -p "$PG" /tmp/pgdata
tar -C "$PG" -xJf .pgdev/pg15.tar.xz
if [ ! -e /usr/share/zoneinfo/UTC ]; then  # Debian's build reads the system's time zones
  mkdir -p /usr/share/zoneinfo && cp -r "$PG"/zoneinfo/* /usr/share/zoneinfo/
fi
BIN=$PG/root/usr/lib/postgresql/15/bin
if [ "$(id -u)" = 0 ]; then  # the server refuses to run as root
  id joepg >/dev/null 2>&1 || useradd -M -s /bin/sh joepg
  chown joepg /tmp/pgdata
  as_pg() { su joepg -s /bin/sh -c "$1"; }
else
  as_pg() { sh -c "$1"; }
fi
ENV="LD_LIBRARY_PATH=$PG/libs TZ=UTC"
as_pg "$ENV $BIN/initdb -D /tmp/pgdata -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/tmp/initdb.log"
PORT=${JOE_BENCH_PG_PORT:-5432}
as_pg "$ENV $BIN/pg_ctl -D /tmp/pgdata -l /tmp/pg.log -w start \
  -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1'"
trap 'as_pg "$ENV $BIN/pg_ctl -D /tmp/pgdata -m fast stop" >/dev/null 2>&1 || true' EXIT

PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -d .gpuw ]; then  # PYTHON=.venv/bin/python: its own packages
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpuw/*.whl
  export PYTHONPATH=/tmp/site
fi
export DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:$PORT/joe_ingest_bench
$PY - <<'PYEOF'
import os

import psycopg

with psycopg.connect(os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres", autocommit=True) as c:
    c.execute("DROP DATABASE IF EXISTS joe_ingest_bench")
    c.execute("CREATE DATABASE joe_ingest_bench")
PYEOF
$PY manage.py migrate -v0
echo "cores: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
$PY benchmarks/ingest.py "$@"
