#!/usr/bin/env bash
# Before and after: two koordinator binaries measured side by side, every
# figure interleaved in the same run. Usage: bench/compare.sh OLD NEW
# (both static builds; OLD may be one that has no state directory support).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$(realpath "$1")
NEW=$(realpath "$2")
ROUNDS=${BENCH_BURSTS:-20}
cargo build -q --release --locked -p koordinator-integration --bin initbench --bin apibench
IB=$PWD/target/release/initbench
AB=$PWD/target/release/apibench
U="unshare --pid --fork --mount-proc"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "| figure | before | after |"
echo "|---|---|---|"
echo "| binary, bytes | $(stat -c %s "$OLD") | $(stat -c %s "$NEW") |"

$IB startup "${BENCH_RUNS:-2000}" "before=$OLD /bin/true" "after=$NEW /bin/true" "bare=/bin/true" >"$OUT/plain"
$IB startup "${BENCH_RUNS_PID1:-1000}" "before=$U $OLD /bin/true" "after=$U $NEW /bin/true" "bare=$U /bin/true" >"$OUT/pid1"
python3 - "$OUT/plain" "$OUT/pid1" <<'PY'
import sys
for path, what in zip(sys.argv[1:], ["`INIT /bin/true`, overhead over bare (median µs)", "the same as PID 1 of a new PID namespace"]):
    m = {l.split()[0]: float(l.split()[1].split("=")[1]) for l in open(path)}
    print(f"| {what} | +{m['before'] - m['bare']:.0f} | +{m['after'] - m['bare']:.0f} |")
PY

for r in 1 2 3 4 5; do
  echo "before $($IB rss "$OLD")" >>"$OUT/rss"
  echo "after $($IB rss "$NEW")" >>"$OUT/rss"
done
for ((r = 0; r < ROUNDS; r++)); do
  echo "before $($U "$OLD" "$IB" orphans 10000)" >>"$OUT/reap"
  echo "after $($U "$NEW" "$IB" orphans 10000)" >>"$OUT/reap"
done
KOORDINATOR_BIN=$OLD $AB watchers "${BENCH_WATCHERS:-200}" >"$OUT/w-before"
KOORDINATOR_BIN=$NEW $AB watchers "${BENCH_WATCHERS:-200}" >"$OUT/w-after"
python3 - "$OUT" <<'PY'
import statistics, sys
out = sys.argv[1]
def rows(name):
    r = {}
    for line in open(f"{out}/{name}"):
        who, *rest = line.split()
        r.setdefault(who, []).append(rest)
    return r
rss = rows("rss")
med = lambda who, i: statistics.median(int(x[i]) for x in rss[who])
print(f"| plain-init VmHWM while the command sleeps, kB | {med('before', 0):.0f} | {med('after', 0):.0f} |")
print(f"| plain-init RssAnon, kB | {med('before', 1):.0f} | {med('after', 1):.0f} |")
reap = rows("reap")
val = lambda who, key: statistics.median(float(dict(f.split("=") for f in x)[key]) for x in reap[who])
print(f"| 10,000 zombies re-parented at once, wall ms (median of {len(reap['after'])}) | {val('before', 'reaped_ms'):.1f} | {val('after', 'reaped_ms'):.1f} |")
print(f"| init CPU for that burst, ms | {val('before', 'init_cpu_ms'):.1f} | {val('after', 'init_cpu_ms'):.1f} |")
for key, what in [("rss_anon_kb", "private memory (RssAnon) per watching koordinator, median kB"), ("vm_hwm_kb", "peak RSS while watching (VmHWM), median kB")]:
    b, a = [open(f"{out}/w-{w}").read().split(key)[1].split()[0].split("=")[1] for w in ("before", "after")]
    print(f"| {what} | {b} | {a} |")
PY
