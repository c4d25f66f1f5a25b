#!/usr/bin/env bash
# Side-by-side benchmarks of koordinator against tini-static, dumb-init and
# catatonit (Debian packages), plus koordinator's coordination figures.
# Usage: bench/run.sh path/to/static/koordinator   (make bench does this)
# Prints a Markdown report; BENCHMARKS.md records runs of it.
#
# Every figure is measured for all inits in the same run, interleaved: the
# inits take turns within each round, and the order rotates from round to
# round, so a machine that drifts affects all of them alike. Noisy figures
# are repeated (ROUNDS) and reported as the median with the range.
set -euo pipefail
cd "$(dirname "$0")/.."

K=$(realpath "$1")
ROUNDS=${BENCH_ROUNDS:-5}
BURSTS=${BENCH_BURSTS:-20}
cargo build -q --release --locked -p koordinator-integration --bin initbench --bin apibench
IB=$PWD/target/release/initbench
AB=$PWD/target/release/apibench
export KOORDINATOR_BIN=$K
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# name|command prefix as a plain child (subreaper where the init has one)|as PID 1
INITS=(
  "koordinator|$K|$K"
  "tini-static|tini-static -s --|tini-static --"
  "catatonit|catatonit --|catatonit --"
  "dumb-init|dumb-init|dumb-init"
)
rotate() { # prints the INITS indexes starting at $1
  local n=${#INITS[@]}
  for ((j = 0; j < n; j++)); do echo $(((j + $1) % n)); done
}

echo "## Run on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r)"
echo
echo "koordinator $($K --version | cut -d' ' -f2-); tini $(dpkg-query -W -f='${Version}' tini),"\
     "catatonit $(dpkg-query -W -f='${Version}' catatonit), dumb-init $(dpkg-query -W -f='${Version}' dumb-init) (Debian)."
echo

echo "### Binary size"
echo
echo "| binary | bytes | ratio to tini-static |"
echo "|---|---|---|"
ts=$(stat -c %s /usr/bin/tini-static)
for b in "$K" /usr/bin/tini-static /usr/bin/catatonit /usr/bin/dumb-init /usr/bin/tini; do
  s=$(stat -c %s "$b")
  link=$(file -b "$b" | grep -oE 'static(ally|-pie)? linked|dynamically linked' || true)
  echo "| $(basename "$b") ($link) | $s | $(python3 -c "print(f'{$s/$ts:.2f}')") |"
done
echo

# hyperfine: each round times every command RUNS times, in rotated order.
startup() { # $1 title, $2 mode (plain|pid1)
  local title=$1 mode=$2
  for ((r = 0; r < ROUNDS; r++)); do
    cmds=()
    for i in $(rotate "$r"); do
      IFS='|' read -r name plain pid1 <<<"${INITS[$i]}"
      if [ "$mode" = plain ]; then cmds+=("-n" "$name" "$plain /bin/true"); else cmds+=("-n" "$name" "unshare --pid --fork --mount-proc $pid1 /bin/true"); fi
    done
    if [ "$mode" = plain ]; then cmds+=("-n" "bare" "/bin/true"); else cmds+=("-n" "bare" "unshare --pid --fork --mount-proc /bin/true"); fi
    hyperfine -N --warmup 50 --runs "${BENCH_RUNS:-300}" --export-json "$OUT/start-$mode-$r.json" "${cmds[@]}" >/dev/null 2>&1
  done
  python3 - "$OUT" "$mode" "$title" <<'PY'
import json, statistics, sys, glob
out, mode, title = sys.argv[1:]
rounds = [json.load(open(f))["results"] for f in sorted(glob.glob(f"{out}/start-{mode}-*.json"))]
med = {}
for r in rounds:
    for x in r:
        med.setdefault(x["command"], []).append(x["median"] * 1e6)
bare = statistics.median(med.pop("bare"))
print(f"### {title}")
print()
runs = len(rounds[0][0]["times"])
print(f"hyperfine -N, {len(rounds)} rounds of {runs} runs each, order rotated; median of the round medians (range). Bare command: {bare:.0f} µs.")
print()
print("| init | median µs | overhead over bare µs | overhead ratio to the best peer |")
print("|---|---|---|---|")
best = min(statistics.median(v) - bare for n, v in med.items() if n != "koordinator")
for n, v in med.items():
    m = statistics.median(v)
    print(f"| {n} | {m:.0f} ({min(v):.0f}–{max(v):.0f}) | +{m - bare:.0f} | {(m - bare) / best:.2f} |")
print()
PY
}
startup "Start-to-exit overhead: \`INIT /bin/true\`" plain
startup "The same as PID 1 of a new PID namespace: \`unshare --pid --fork --mount-proc INIT /bin/true\`" pid1

echo "### Memory of the init while its command sleeps"
echo
echo "VmHWM: peak resident set, file-backed text included; RssAnon: memory the init"
echo "allocated itself. $ROUNDS rounds, rotated; median (range)."
echo
for ((r = 0; r < ROUNDS; r++)); do
  for i in $(rotate "$r"); do
    IFS='|' read -r name plain _ <<<"${INITS[$i]}"
    # shellcheck disable=SC2086
    echo "$name $($IB rss $plain 2>/dev/null)" >>"$OUT/rss"
  done
done
python3 - "$OUT/rss" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, hwm, anon = line.split()
    rows.setdefault(n, ([], []))
    rows[n][0].append(int(hwm)); rows[n][1].append(int(anon))
print("| init | VmHWM kB | RssAnon kB |")
print("|---|---|---|")
for n, (h, a) in rows.items():
    print(f"| {n} | {statistics.median(h):.0f} ({min(h)}–{max(h)}) | {statistics.median(a):.0f} ({min(a)}–{max(a)}) |")
print()
PY

echo "### Reaping: 10,000 zombies re-parented to PID 1 at once"
echo
echo "\`initbench orphans 10000\` as the command of \`unshare --pid --fork --mount-proc INIT\`: an"
echo "intermediate process forks 10,000 children that exit, then exits itself, so"
echo "PID 1 inherits 10,000 zombies at once. Wall: until PID 1 has no child left but"
echo "the command; CPU: PID 1's own CPU time over the burst (/proc/1/schedstat)."
echo "$BURSTS rounds, rotated; median (range)."
echo
for ((r = 0; r < BURSTS; r++)); do
  for i in $(rotate "$r"); do
    IFS='|' read -r name _ pid1 <<<"${INITS[$i]}"
    # shellcheck disable=SC2086
    echo "$name $(unshare --pid --fork --mount-proc $pid1 "$IB" orphans 10000)" >>"$OUT/reap"
  done
done
python3 - "$OUT/reap" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, wall, cpu = line.split()
    rows.setdefault(n, ([], []))
    rows[n][0].append(float(wall.split("=")[1])); rows[n][1].append(float(cpu.split("=")[1]))
med = {n: (statistics.median(w), statistics.median(c)) for n, (w, c) in rows.items()}
best_w = min(m[0] for n, m in med.items() if n != "koordinator")
best_c = min(m[1] for n, m in med.items() if n != "koordinator")
print("| init | wall ms | init CPU ms | wall ratio to the best peer | CPU ratio to the best peer |")
print("|---|---|---|---|---|")
for n, (w, c) in rows.items():
    print(f"| {n} | {med[n][0]:.1f} ({min(w):.1f}–{max(w):.1f}) | {med[n][1]:.1f} ({min(c):.1f}–{max(c):.1f}) | {med[n][0] / best_w:.2f} | {med[n][1] / best_c:.2f} |")
print()
PY

echo "### Signal-forwarding latency: kill(INIT, SIGUSR1) to the command's handler (500 signals)"
echo
echo "| init | median µs | p99 µs |"
echo "|---|---|---|"
for entry in "${INITS[@]}"; do
  IFS='|' read -r name plain _ <<<"$entry"
  # shellcheck disable=SC2086
  out=$($IB signal-latency 500 $plain 2>/dev/null)
  echo "| $name | $(sed 's/.*median_us=\([0-9]*\).*/\1/' <<<"$out") | $(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$out") |"
done
echo

echo "### Coordination through the API (fake API server on loopback, TLS)"
echo
echo '```'
echo "\$ apibench latency ${BENCH_API_RUNS:-100}"
$AB latency "${BENCH_API_RUNS:-100}"
echo "\$ apibench watchers ${BENCH_WATCHERS:-200}"
$AB watchers "${BENCH_WATCHERS:-200}"
echo "\$ apibench quiet 120 20s"
$AB quiet 120 20s
echo '```'
echo
echo "### Coordination without the API (state directory and probes)"
echo
echo '```'
echo "\$ apibench local ${BENCH_API_RUNS:-100}"
$AB local "${BENCH_API_RUNS:-100}"
echo '```'
