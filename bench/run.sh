#!/usr/bin/env bash
# Side-by-side benchmarks of koordinator against tini, dumb-init and
# catatonit (Debian packages), plus koordinator's coordination figures.
# Usage: bench/run.sh path/to/static/koordinator   (make bench does this)
# Prints a Markdown report; BENCHMARKS.md records one run of it.
set -euo pipefail
cd "$(dirname "$0")/.."

K=$(realpath "$1")
RUNS=${BENCH_RUNS:-1000}
cargo build -q --release --locked -p koordinator-integration --bin initbench --bin apibench
IB=$PWD/target/release/initbench
AB=$PWD/target/release/apibench
export KOORDINATOR_BIN=$K

# name|command prefix as a plain child (subreaper where the init supports it)|as PID 1
INITS=(
  "koordinator|$K|$K"
  "tini|tini -s --|tini --"
  "dumb-init|dumb-init|dumb-init"
  "catatonit|catatonit --|catatonit --"
)

echo "## Run on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r)"
echo
echo "Versions: koordinator $($K --version | cut -d' ' -f2-), tini $(dpkg-query -W -f='${Version}' tini),"\
     "dumb-init $(dpkg-query -W -f='${Version}' dumb-init), catatonit $(dpkg-query -W -f='${Version}' catatonit)"
echo

echo "### Start-to-exit overhead: \`INIT /bin/true\` (hyperfine, $RUNS runs each)"
echo
cmds=()
for entry in "${INITS[@]}"; do IFS='|' read -r _ plain _ <<<"$entry"; cmds+=("$plain /bin/true"); done
hyperfine -N --warmup 100 --runs "$RUNS" --export-json /tmp/koordinator-bench-start.json "${cmds[@]}" "/bin/true" >/dev/null 2>&1
python3 - <<'PY'
import json
r = json.load(open("/tmp/koordinator-bench-start.json"))["results"]
names = ["koordinator", "tini", "dumb-init", "catatonit", "/bin/true alone"]
med = {n: x["median"] * 1e6 for n, x in zip(names, r)}
tini = med["tini"]
print("| init | median µs | ratio to tini |")
print("|---|---|---|")
for n in names:
    print(f"| {n} | {med[n]:.0f} | {med[n] / tini:.2f} |")
PY
echo

echo "### Memory of the init while its command sleeps"
echo
echo "VmHWM is the peak resident set, file-backed text included; RssAnon is the"
echo "memory the init itself allocated (heap, stack, data)."
echo
echo "| init | VmHWM kB | RssAnon kB |"
echo "|---|---|---|"
for entry in "${INITS[@]}"; do
  IFS='|' read -r name plain _ <<<"$entry"
  # shellcheck disable=SC2086
  read -r hwm anon <<<"$($IB rss $plain)"
  echo "| $name | $hwm | $anon |"
done
echo

echo "### Reaping: 10,000 zombies re-parented to PID 1 at once, time until all are reaped (median of 5)"
echo
echo "| init | ms | ratio to tini |"
echo "|---|---|---|"
declare -A reap
for entry in "${INITS[@]}"; do
  IFS='|' read -r name _ pid1 <<<"$entry"
  times=()
  for _ in 1 2 3 4 5; do
    # shellcheck disable=SC2086
    out=$(unshare --pid --fork --mount-proc $pid1 "$IB" orphans 10000)
    times+=("${out#reaped_ms=}")
  done
  reap[$name]=$(printf "%s\n" "${times[@]}" | sort -n | sed -n 3p)
done
for entry in "${INITS[@]}"; do
  IFS='|' read -r name _ _ <<<"$entry"
  echo "| $name | ${reap[$name]} | $(python3 -c "print(f'{${reap[$name]}/${reap[tini]}:.2f}')") |"
done
echo

echo "### Signal-forwarding latency: kill(INIT, SIGUSR1) to the command's handler (500 signals)"
echo
echo "| init | median µs | p99 µs |"
echo "|---|---|---|"
for entry in "${INITS[@]}"; do
  IFS='|' read -r name plain _ <<<"$entry"
  # shellcheck disable=SC2086
  out=$($IB signal-latency 500 $plain)
  echo "| $name | $(sed 's/.*median_us=\([0-9]*\).*/\1/' <<<"$out") | $(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$out") |"
done
echo

echo "### Binary size (bytes)"
echo
echo "| binary | bytes | linkage |"
echo "|---|---|---|"
for b in "$K" /usr/bin/tini /usr/bin/tini-static /usr/bin/dumb-init /usr/bin/catatonit /usr/libexec/podman/catatonit; do
  [ -f "$b" ] && [ ! -L "$b" ] || continue
  link=$(file -b "$b" | grep -oE 'static(ally|-pie)? linked|dynamically linked' || true)
  echo "| $b | $(stat -c %s "$b") | $link |"
done
echo

echo "### Coordination (fake API server on loopback, TLS)"
echo
echo '```'
$AB latency "${BENCH_API_RUNS:-100}"
$AB quiet 60 10s
echo '```'
