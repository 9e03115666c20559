#!/bin/bash
# capped-redis.sh: HTTP switch capacity when Redis is what saturates.
#
# On a 2-core machine the HTTP benchmark's client, the server and Redis
# share the cores, and Redis spends under half of the CPU, so a cheaper
# switch script barely moves req/s. Deployed, Redis is the one resource all
# instances share. This script reproduces that: it starts a private
# redis-server in a CPU cgroup capped at CPU cores (default 0.5), then runs
# each given test binary's BenchmarkHTTPSwitch against it, taking turns, and
# prints req/s, p50 and p99, and the Redis process's user and system CPU
# per switch.
# Needs root and a writable cgroup cpu controller (v1 or v2).
#
#   (cd <other tree> && go test -c -o /tmp/ab/base.test .) && go test -c -o /tmp/ab/new.test .
#   bench/capped-redis.sh -rounds 5 /tmp/ab/base.test /tmp/ab/new.test
#
# -case picks the sub-benchmark (default http-limits+log-on/conns=64),
# -n the switches per run (default 6000).
set -euo pipefail

cpu=0.5 rounds=3 n=6000 case='http-limits\+log-on/conns=64$'
while [[ $# -gt 0 && $1 == -* ]]; do
  case $1 in
    -cpu) cpu=$2 ;;
    -rounds) rounds=$2 ;;
    -n) n=$2 ;;
    -case) case=$2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ $# -ge 1 ]] || { echo "usage: $0 [-cpu 0.5] [-rounds 3] [-n 6000] [-case re] test-binary..." >&2; exit 2; }

# a free loopback port: the kernel picks one
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
period=10000 # µs: a short period spreads the cap evenly
quota=$(awk -v c="$cpu" -v p=$period 'BEGIN { printf "%d", c * p }')

if [[ -w /sys/fs/cgroup/cgroup.subtree_control ]]; then # cgroup v2
  cg=/sys/fs/cgroup/sk-capped-$$
  mkdir "$cg"
  echo "$quota $period" >"$cg/cpu.max"
elif [[ -d /sys/fs/cgroup/cpu ]]; then # cgroup v1
  cg=/sys/fs/cgroup/cpu/sk-capped-$$
  mkdir "$cg"
  echo $period >"$cg/cpu.cfs_period_us"
  echo "$quota" >"$cg/cpu.cfs_quota_us"
else
  echo "no writable cpu cgroup here" >&2
  exit 1
fi

redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
for _ in $(seq 50); do [[ -s $dir/redis.pid ]] && break; sleep 0.1; done
pid=$(cat "$dir/redis.pid")
cleanup() {
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
echo "$pid" >"$cg/cgroup.procs"

tick=$(getconf CLK_TCK)
echo "redis-server pid $pid on 127.0.0.1:$port, capped at $cpu CPU; $n switches a run, case $case"
printf '%-16s %5s %8s %8s %8s %14s %14s\n' binary round req/s p50-µs p99-µs redis-user-µs redis-sys-µs
for r in $(seq "$rounds"); do
  for bin in "$@"; do
    read -r u1 s1 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
    out=$(REDIS_TEST_ADDR=127.0.0.1:$port "$bin" -test.run '^$' -test.bench "^BenchmarkHTTPSwitch$/$case" \
      -test.benchtime "${n}x" 2>&1) || { echo "$out" >&2; exit 1; }
    read -r u2 s2 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
    # the benchmark line's metrics: "<value> <unit>" pairs
    read -r p50 p99 rps < <(awk '/req\/s/ { for (i = 2; i < NF; i++) m[$(i + 1)] = $i
      print m["p50-µs"], m["p99-µs"], m["req/s"] }' <<<"$out" | tail -1)
    # the run's set-up (sessions created, started, deleted) is in the CPU too
    awk -v b="$(basename "$bin")" -v r="$r" -v q="$rps" -v p="$p50" -v pp="$p99" -v u=$((u2 - u1)) -v s=$((s2 - s1)) \
      -v t="$tick" -v n="$n" 'BEGIN { printf "%-16s %5d %8s %8s %8s %14.1f %14.1f\n", b, r, q, p, pp,
        u / t * 1e6 / n, s / t * 1e6 / n }'
  done
done
