#!/usr/bin/env bash
# redis-server with hakmem preloaded, on 127.0.0.1 only: a scripted data set
# (strings, lists, hashes, sets, sorted sets, appends, deletes) whose query
# results and DEBUG DIGEST must match a server without hakmem; then
# redis-benchmark (20000 requests per command, also preloaded) and checks of
# what it left behind. Needs redis-server, redis-cli and redis-benchmark
# (Debian packages redis-server and redis-tools).
#
# Debian's redis links libjemalloc.so.2 but calls the standard malloc names,
# so the preloaded hakmem serves its allocations (jemalloc's mallctl keeps
# answering its own, unused, statistics).
TEST_NAME=redis
lib=hakmem/tests/programs/lib.sh
[[ -f ${lib} ]] || lib="$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib.sh
source "${lib}"

need redis-server redis-cli redis-benchmark timeout

SERVER_PID=""
PORT=""
stop_server_now() {
  # Only the server this test started, by its pid.
  if [[ -n ${SERVER_PID} ]] && kill -0 "${SERVER_PID}" 2>/dev/null; then
    kill "${SERVER_PID}" 2>/dev/null || true
    sleep 0.5
    kill -9 "${SERVER_PID}" 2>/dev/null || true
  fi
  SERVER_PID=""
}
CLEANUP=stop_server_now

cli() {
  # redis-cli itself runs without hakmem: only the server (and the
  # benchmark) are under test.
  plain timeout 30 redis-cli -h 127.0.0.1 -p "${PORT}" "$@"
}

# start_server RUNNER NAME: starts redis-server in the background on a free
# loopback port, with or without hakmem; waits until it answers PING.
start_server() {
  local runner=$1 name=$2 dir="${WORK}/$2" attempt
  mkdir -p "${dir}"
  for attempt in 1 2 3; do
    PORT=$(free_port)
    local args=(--bind 127.0.0.1 --port "${PORT}" --save '' --appendonly no
      --daemonize no --protected-mode yes --dir "${dir}" --logfile "${dir}/server.log"
      --enable-debug-command local --databases 2)
    if [[ ${runner} == plain ]]; then
      plain redis-server "${args[@]}" >"${dir}/stdout" 2>&1 &
    else
      hakmem "${WORK}/${name}.stats" redis-server "${args[@]}" >"${dir}/stdout" 2>&1 &
    fi
    SERVER_PID=$!
    local i
    for i in $(seq 1 100); do
      if [[ $(plain redis-cli -h 127.0.0.1 -p "${PORT}" ping 2>/dev/null) == PONG ]]; then
        echo "  redis-server (${name}) pid ${SERVER_PID} on 127.0.0.1:${PORT}"
        return 0
      fi
      kill -0 "${SERVER_PID}" 2>/dev/null || break
      sleep 0.1
    done
    stop_server_now
    echo "  redis-server did not come up on port ${PORT} (attempt ${attempt})"
    tail -n 5 "${dir}/server.log" 2>/dev/null || true
  done
  die "redis-server (${name}) did not start"
}

# stop_server NAME: SHUTDOWN NOSAVE, then the server must exit with status 0.
stop_server() {
  local name=$1 rc=0 i
  cli shutdown nosave >/dev/null 2>&1 || true
  for i in $(seq 1 100); do
    kill -0 "${SERVER_PID}" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "${SERVER_PID}" 2>/dev/null; then
    stop_server_now
    die "redis-server (${name}) did not exit after SHUTDOWN"
  fi
  wait "${SERVER_PID}" || rc=$?
  SERVER_PID=""
  ((rc == 0)) || { show_tail "${WORK}/${name}/server.log"; die "redis-server (${name}) exited with status ${rc}"; }
}

# The data set, as Redis protocol for redis-cli --pipe (generated once,
# without hakmem).
plain /usr/bin/python3 - "${WORK}/load.resp" <<'EOF'
import sys

def cmd(*args):
    out = ["*%d\r\n" % len(args)]
    for a in args:
        a = str(a)
        out.append("$%d\r\n%s\r\n" % (len(a.encode()), a))
    return "".join(out)

parts = []
for i in range(20000):
    parts.append(cmd("SET", "str:%d" % i, ("v%d-" % i) * (1 + i % 97)))
for i in range(0, 20000, 3):
    parts.append(cmd("APPEND", "str:%d" % i, "x" * (i % 300)))
for i in range(200):
    parts.append(cmd("RPUSH", "list:%d" % (i % 20), *["e%d.%d" % (i, k) for k in range(50)]))
for i in range(3000):
    parts.append(cmd("HSET", "hash:%d" % (i % 100), "f%d" % i, "val" * (i % 40)))
for i in range(5000):
    parts.append(cmd("SADD", "set:%d" % (i % 50), "m%d" % (i * 7 % 4001)))
    parts.append(cmd("ZADD", "zset:%d" % (i % 10), str(i * 37 % 1009), "z%d" % i))
for i in range(0, 20000, 5):
    parts.append(cmd("DEL", "str:%d" % i))
for i in range(20):
    parts.append(cmd("LTRIM", "list:%d" % i, 10, 400))
parts.append(cmd("SET", "known:greeting", "hello from hakmem's test"))
parts.append(cmd("SET", "known:counter", "41"))
parts.append(cmd("INCR", "known:counter"))
parts.append(cmd("SELECT", "1"))
parts.append(cmd("SET", "known:db1", "in database one"))
parts.append(cmd("SELECT", "0"))
with open(sys.argv[1], "w", newline="") as f:
    f.write("".join(parts))
EOF

cat >"${WORK}/queries.txt" <<'EOF'
GET known:greeting
GET known:counter
DBSIZE
STRLEN str:1
STRLEN str:2997
GET str:3
EXISTS str:5
LLEN list:7
LRANGE list:3 0 5
HLEN hash:42
HGET hash:42 f1042
SCARD set:17
ZCARD zset:4
ZRANGE zset:4 0 4 WITHSCORES
ZRANGEBYSCORE zset:9 100 110
SINTERCARD 2 set:1 set:2
SELECT 1
GET known:db1
SELECT 0
DEBUG DIGEST
EOF

# data_set NAME: loads the data set, runs the queries (output in NAME.queries).
data_set() {
  local name=$1
  cli --pipe <"${WORK}/load.resp" >"${WORK}/${name}.pipe" 2>&1 ||
    { cat "${WORK}/${name}.pipe" >&2; die "redis-cli --pipe failed (${name})"; }
  grep -q 'errors: 0, replies: ' "${WORK}/${name}.pipe" ||
    { cat "${WORK}/${name}.pipe" >&2; die "loading the data set gave errors (${name})"; }
  cli <"${WORK}/queries.txt" >"${WORK}/${name}.queries" 2>&1 || die "the queries failed (${name})"
}

# benchmark RUNNER NAME: redis-benchmark, bounded in count and time, then
# the keys it leaves behind.
benchmark() {
  local runner=$1 name=$2 rc=0
  local args=(-h 127.0.0.1 -p "${PORT}" -n 20000 -q -t set,get,lpush,lpop,incr,hset -d 256)
  if [[ ${runner} == plain ]]; then
    plain timeout 60 redis-benchmark "${args[@]}" >"${WORK}/${name}.bench" 2>&1 || rc=$?
  else
    hakmem "${WORK}/${name}.bench.stats" timeout 60 redis-benchmark "${args[@]}" \
      >"${WORK}/${name}.bench" 2>&1 || rc=$?
  fi
  ((rc == 0)) || { cat "${WORK}/${name}.bench" >&2; die "redis-benchmark failed or timed out (${name}, status ${rc})"; }
  tr '\r' '\n' <"${WORK}/${name}.bench" | grep 'requests per second' | sed 's/^ *//; s/^/  | /'
  local t
  for t in SET GET LPUSH LPOP INCR HSET; do
    # grep reads all its input (no -q): under pipefail an early exit would
    # kill tr with SIGPIPE and fail the pipeline although the line is there.
    tr '\r' '\n' <"${WORK}/${name}.bench" | grep "^${t}: .*requests per second" >/dev/null ||
      die "redis-benchmark printed no result for ${t} (${name})"
  done
  # Without -r every request hits the same key: INCR ran 20000 times, LPUSH
  # and LPOP balance out, HSET set one field.
  {
    cli get 'counter:__rand_int__'
    cli llen mylist
    cli hlen 'myhash'
    cli strlen 'key:__rand_int__'
    cli debug digest
  } >"${WORK}/${name}.after_bench"
}

# run_redis RUNNER: the server's whole life, its data set and the benchmark.
run_redis() {
  local run=$1 t0
  step "redis-server ${run}: data set and queries"
  t0=${SECONDS}
  start_server "${run}" "${run}"
  data_set "${run}"
  echo "  loaded and queried in $((SECONDS - t0)) s"
  step "redis-benchmark ${run} (20000 requests per command, 60 s limit)"
  benchmark "${run}" "${run}"
  step "redis-server ${run}: shutdown"
  stop_server "${run}"
}

# The run without hakmem is made once for every variant (plain_baseline).
plain_baseline "$(plain redis-server --version; plain redis-cli --version)" run_redis plain
run_redis hakmem

step "compare"
check "known keys hold the values written"
grep -qx "hello from hakmem's test" "${WORK}/hakmem.queries" || die "known:greeting has the wrong value"
grep -qx '42' "${WORK}/hakmem.queries" || die "known:counter is not 42"
grep -qx 'in database one' "${WORK}/hakmem.queries" || die "known:db1 has the wrong value"
check "query results and DEBUG DIGEST identical with and without hakmem"
same_file "${WORK}/plain.queries" "${WORK}/hakmem.queries" "the query results"
check "after redis-benchmark: INCR counter is 20000, the list is empty, the same digest"
[[ $(sed -n 1p "${WORK}/hakmem.after_bench") == 20000 ]] || die "INCR counter is $(sed -n 1p "${WORK}/hakmem.after_bench"), not 20000"
[[ $(sed -n 2p "${WORK}/hakmem.after_bench") == 0 ]] || die "mylist is not empty after as many LPOPs as LPUSHes"
same_file "${WORK}/plain.after_bench" "${WORK}/hakmem.after_bench" "the keys redis-benchmark left"
step "hakmem served the server and the benchmark"
expect_served "${WORK}/hakmem.stats" "${WORK}/hakmem/stdout"
expect_served "${WORK}/hakmem.bench.stats" "${WORK}/hakmem.bench"

finish
