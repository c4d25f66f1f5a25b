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

# Start-to-exit time, every command taking its turn run by run (A B C D E A
# B ...), so that a drifting machine affects all of them alike.
startup() { # $1 title, $2 prefix for every command (empty, or unshare ...)
  local title=$1 prefix=$2 cmds=()
  for entry in "${INITS[@]}"; do
    IFS='|' read -r name plain pid1 <<<"$entry"
    if [ -z "$prefix" ]; then cmds+=("$name=$plain /bin/true"); else cmds+=("$name=$prefix $pid1 /bin/true"); fi
  done
  cmds+=("bare=$prefix /bin/true")
  $IB startup "${BENCH_RUNS:-2000}" "${cmds[@]}" >"$OUT/startup"
  python3 - "$OUT/startup" "$title" "${BENCH_RUNS:-2000}" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, med, p90 = line.split()
    rows[name] = (float(med.split("=")[1]), float(p90.split("=")[1]))
bare = rows.pop("bare")[0]
best = min(m - bare for n, (m, _) in rows.items() if n != "koordinator")
print(f"### {sys.argv[2]}")
print()
print(f"`initbench startup {sys.argv[3]}`: every command runs {sys.argv[3]} times, the commands taking turns run by run (after a tenth as warm-up). Bare command: {bare:.0f} µs.")
print()
print("| init | median µs | p90 µs | overhead over bare µs | overhead ratio to the best peer |")
print("|---|---|---|---|---|")
for n, (m, p) in rows.items():
    print(f"| {n} | {m:.0f} | {p:.0f} | +{m - bare:.0f} | {(m - bare) / best:.2f} |")
print()
PY
}
startup "Start-to-exit overhead: \`INIT /bin/true\`" ""
startup "The same as PID 1 of a new PID namespace: \`unshare --pid --fork --mount-proc INIT /bin/true\`" "unshare --pid --fork --mount-proc"

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
rows, ticks = {}, {}
for line in open(sys.argv[1]):
    n, *fields = line.split()
    f = dict(x.split("=") for x in fields)
    rows.setdefault(n, ([], []))
    rows[n][0].append(float(f["reaped_ms"])); rows[n][1].append(float(f["init_cpu_ms"]))
    t = ticks.setdefault(n, [0, 0])
    t[0] += int(f.get("init_user_ticks", 0)); t[1] += int(f.get("init_sys_ticks", 0))
med = {n: (statistics.median(w), statistics.median(c)) for n, (w, c) in rows.items()}
best_w = min(m[0] for n, m in med.items() if n != "koordinator")
best_c = min(m[1] for n, m in med.items() if n != "koordinator")
print("| init | wall ms | init CPU ms | wall ratio to the best peer | CPU ratio to the best peer | user / system CPU over all rounds, ticks |")
print("|---|---|---|---|---|---|")
for n, (w, c) in rows.items():
    print(f"| {n} | {med[n][0]:.1f} ({min(w):.1f}–{max(w):.1f}) | {med[n][1]:.1f} ({min(c):.1f}–{max(c):.1f}) | {med[n][0] / best_w:.2f} | {med[n][1] / best_c:.2f} | {ticks[n][0]} / {ticks[n][1]} |")
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
