#!/usr/bin/env python3
"""Which pages of its own binary a command touches: a callgrind run with
instruction addresses, mapped onto the binary's load segments.

usage: bench/pages.py UNSTRIPPED_BINARY [ARGS...]

Prints, for the executable segment: the 4 KiB pages that hold executed
instructions and the 64 KiB windows they fall in (a file page fault maps
the whole "fault-around" window around it: 64 KiB aligned on the virtual
address, clipped to the mapping; so windows, not pages, are what VmHWM
counts), and the functions that bring in each window. Then the truth to
compare it with: `BINARY sleep 1` run for real, and after 0.5 s the pages
of each of the binary's mappings that are resident (/proc/PID/pagemap),
with the windows they fill. Needs valgrind. The binary must be an
unstripped build with the same layout as the shipped one
(CARGO_PROFILE_RELEASE_STRIP=false).
"""
import collections, os, re, struct, subprocess, sys, tempfile, time

binary, args = sys.argv[1], sys.argv[2:]
out = tempfile.mktemp(prefix="callgrind.")
subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes", "--callgrind-out-file=" + out,
                binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

# Executed instruction addresses in the binary's own object.
addrs, current_ob, ob_names, fn_names, current_fn = set(), None, {}, {}, None
last = 0
for line in open(out):
    m = re.match(r"ob=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2): ob_names[m.group(1)] = m.group(2)
        current_ob = ob_names.get(m.group(1)); continue
    if line.startswith(("calls=", "cfn=", "cob=", "cfi=", "cfl=", "fi=", "fe=", "fl=", "jump=", "jcnd=")):
        continue
    m = re.match(r"fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2): fn_names[m.group(1)] = m.group(2)
        current_fn = fn_names.get(m.group(1)); continue
    # Cost lines start with the instruction address: absolute (0x..),
    # relative to the previous one (+N, -N) or the same (*).
    m = re.match(r"(0x[0-9a-f]+|[+-][0-9a-f]+|\*)\s", line)
    if not m:
        continue
    pos = m.group(1)
    if pos.startswith("0x"):
        last = int(pos, 16)
    elif pos[0] in "+-":
        last += int(pos, 16) if pos[0] == "+" else -int(pos[1:], 16)
    if current_ob and os.path.realpath(current_ob) == os.path.realpath(binary):
        addrs.add((last, current_fn))
os.unlink(out)

segs = []
for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True).stdout.splitlines():
    f = line.split()
    if f and f[0] == "LOAD":
        segs.append((int(f[2], 16), int(f[5], 16), f[6:-1]))
text = [s for s in segs if "E" in "".join(s[2])][0]
start, size = text[0], text[1]
pages = collections.defaultdict(set)
for a, fn in addrs:
    if start <= a < start + size:
        pages[a // 4096].add(fn)
windows = collections.defaultdict(set)
for p, fns in pages.items():
    windows[p // 16].update(fns)
first, last_window = start // 65536, (start + size - 1) // 65536
print(f"text segment: {size // 1024} KiB, {size // 4096} pages, {last_window - first + 1} windows of 64 KiB")
print(f"executed: {len(addrs)} distinct instructions on {len(pages)} pages (4 KiB) in {len(windows)} windows (64 KiB)")
print(f"so at most {len(windows) * 64} KiB of text is mapped by fault-around, {len(pages) * 4} KiB touched")
for w in sorted(windows):
    names = sorted({re.sub(r"::h[0-9a-f]{16}$", "", n or "?") for n in windows[w]})
    print(f"  window {w - first:3}: {len(names):3} functions, e.g. {', '.join(n[:60] for n in names[:3])}")

# What is resident for real while the command sleeps.
proc = subprocess.Popen([binary, "sleep", "1"])
time.sleep(0.5)
total = 0
with open(f"/proc/{proc.pid}/pagemap", "rb") as pagemap:
    for line in open(f"/proc/{proc.pid}/maps"):
        f = line.split()
        if len(f) < 6 or os.path.realpath(f[5]) != os.path.realpath(binary):
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        pagemap.seek(lo // 4096 * 8)
        entries = pagemap.read((hi - lo) // 4096 * 8)
        present = [lo // 4096 + i for i in range(len(entries) // 8)
                   if struct.unpack_from("<Q", entries, i * 8)[0] >> 63]
        total += len(present)
        print(f"resident while `sleep 1` runs, {f[1]} mapping: {len(present)} of {(hi - lo) // 4096} pages, "
              f"in {len({p // 16 for p in present})} windows of 64 KiB")
status = open(f"/proc/{proc.pid}/status").read()
proc.wait()
hwm = re.search(r"VmHWM:\s+(\d+)", status).group(1)
print(f"resident pages of the binary: {total * 4} kB of VmHWM {hwm} kB")
