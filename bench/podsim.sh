#!/usr/bin/env bash
# The seed Job in podsim: reaction latencies over RUNS sequential runs, then
# N pods at once (total koordinator RSS and CPU time, API requests served).
# Usage: bench/podsim.sh path/to/static/koordinator   (make bench runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
export KOORDINATOR_BIN
KOORDINATOR_BIN=$(realpath "$1")
RUNS=${BENCH_SEED_RUNS:-50}
cargo build -q --release --locked -p koordinator-integration --bin podsim
PODSIM=$PWD/target/release/podsim

echo "### The seed Job in podsim: $RUNS runs, one at a time"
echo
for _ in $(seq "$RUNS"); do
  "$PODSIM" bench/seed-job-stamp.yaml
done | python3 -c '
import re, statistics, sys
ready = exec_ = main_exit = None
start, stop = [], []
for line in sys.stdin:
    m = re.match(r"\+([0-9.]+)s (.*)", line)
    if not m:
        continue
    t, text = float(m.group(1)), m.group(2)
    if text == "database-proxy ready": ready = t
    elif text.startswith("main-container | exec +"): exec_ = float(text.split("+")[1].rstrip("s"))
    elif text.startswith("main-container terminated"): main_exit = t
    elif text.startswith("database-proxy terminated"):
        start.append((exec_ - ready) * 1000); stop.append((t - main_exit) * 1000)
def row(name, xs):
    xs = sorted(xs)
    print(f"| {name} | {statistics.median(xs):.2f} | {xs[int(0.9 * (len(xs) - 1))]:.2f} | {len(xs)} |")
print("| interval | median ms | p90 ms | runs |")
print("|---|---|---|---|")
row("proxy ready (status served) to main exec", start)
row("main exited to proxy exited", stop)
'
echo

# Samples every koordinator process (comm "koordinator") while N pods run:
# the peak of the summed RSS, and the CPU time each had used when last seen.
sample() {
  python3 -c '
import os, sys, time
cpu, peak_rss, peak_anon = {}, 0, 0
stop = sys.argv[1]
while not os.path.exists(stop):
    rss = anon = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "koordinator":
                    continue
            with open(f"/proc/{pid}/schedstat") as f:
                cpu[pid] = int(f.read().split()[0]) / 1e9
            with open(f"/proc/{pid}/status") as f:
                fields = dict(l.split(":", 1) for l in f if ":" in l)
            rss += int(fields["VmRSS"].split()[0])
            anon += int(fields["RssAnon"].split()[0])
        except (OSError, KeyError, ValueError):
            pass
    peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
    time.sleep(0.05)
print(f"{len(cpu)} {peak_rss} {peak_anon} {sum(cpu.values()):.2f}")
' "$1"
}

echo "### N seed-Job pods at once (podsim, each pod its own API server)"
echo
echo "Sampled every 50 ms from /proc: koordinator processes seen, the peak of their summed"
echo "VmRSS and RssAnon (private memory), and their CPU time from schedstat."
echo
echo "| pods | all succeeded | wall s | koordinator processes seen | peak total VmRSS MiB | peak total RssAnon MiB | koordinator CPU s | API requests served |"
echo "|---|---|---|---|---|---|---|---|"
for n in ${BENCH_CONCURRENT:-100 500}; do
  out=$(mktemp -d)
  rm -f "$out/stop"
  sample "$out/stop" > "$out/sample" &
  sampler=$!
  started=$(date +%s.%N)
  for i in $(seq "$n"); do
    "$PODSIM" -q examples/job-demo.yaml > "$out/$i.log" 2>&1 &
  done
  ok=0
  for job in $(jobs -p); do
    [ "$job" = "$sampler" ] && continue
    if wait "$job"; then ok=$((ok + 1)); fi
  done
  # Keep the first failed pod's timeline for a look (stderr).
  for log in "$out"/*.log; do
    if ! grep -q "^+.* pod Succeeded" "$log"; then
      echo "first failed pod of $n ($log):" >&2
      tail -20 "$log" >&2
      break
    fi
  done
  wall=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
  touch "$out/stop"
  wait "$sampler"
  read -r procs peak anon cpu < "$out/sample"
  requests=$(cat "$out"/*.log | sed -n 's/^api requests served: //p' | paste -sd+ | bc)
  echo "| $n | $ok of $n | $wall | $procs | $(python3 -c "print(f'{$peak/1024:.1f}')") | $(python3 -c "print(f'{$anon/1024:.1f}')") | $cpu | $requests |"
  rm -rf "$out"
done
