#!/usr/bin/env bash
# `footfall parse` against GoAccess as interleaved pairs on the same input.
#
# Each round runs `goaccess --log-format=COMBINED -o out.json`, then
# `footfall parse -j 1`, then `footfall parse -j 2`, back to back, so that each
# pair of runs shares the machine's state of the moment. The ratio of each pair
# is printed, then the median ratio over the rounds: on a shared, noisy machine
# that is steadier than a ratio of medians taken minutes apart.
#
# Usage: bash deploy/bench/parse_pairs.sh [--lines N] [--rounds R] [--input FILE]
# Needs: goaccess, python3 and /usr/bin/time; builds footfall (release).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
LINES=1000000
ROUNDS=5
INPUT=""
while (($#)); do
    case "$1" in
    --lines) LINES="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --input) INPUT="$2"; shift 2 ;;
    *) echo "usage: $0 [--lines N] [--rounds R] [--input FILE]" >&2; exit 2 ;;
    esac
done
for tool in goaccess python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "parse_pairs.sh: $tool is required" >&2; exit 69; }
done
WORK="$(mktemp -d /tmp/footfall-pairs.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
FF="${CARGO_TARGET_DIR:-$ROOT/target}/release/footfall"

echo "parse_pairs: building footfall (release)" >&2
cargo build --release -p footfall -q
if [[ -z "$INPUT" ]]; then
    echo "parse_pairs: generating $LINES lines" >&2
    INPUT="$WORK/access.log"
    python3 deploy/bench/genlog.py --lines "$LINES" > "$INPUT"
fi
"$FF" keys --keyring "$WORK/keyring" init

# seconds CMD...: wall time of one run.
seconds() {
    /usr/bin/time -f '%e' -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err" || { cat "$WORK/err" >&2; return 1; }
    cat "$WORK/t"
}

: > "$WORK/rounds"
for round in $(seq "$ROUNDS"); do
    ga=$(seconds goaccess "$INPUT" --log-format=COMBINED --no-global-config -o "$WORK/ga.json")
    j1=$(seconds "$FF" parse --format combined --keyring "$WORK/keyring" -j 1 -o /dev/null "$INPUT")
    j2=$(seconds "$FF" parse --format combined --keyring "$WORK/keyring" -j 2 -o /dev/null "$INPUT")
    echo "$ga $j1 $j2" >> "$WORK/rounds"
    echo "round $round/$ROUNDS: goaccess ${ga}s, footfall -j 1 ${j1}s, -j 2 ${j2}s" >&2
done

python3 - "$WORK/rounds" "$INPUT" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
lines = sum(1 for _ in open(sys.argv[2], "rb"))
r1 = [g / a for g, a, _ in rows]
r2 = [g / b for g, _, b in rows]
print(f"Input: {lines:,} lines, {len(rows)} interleaved rounds.")
print()
print("| round | goaccess s | footfall -j 1 s | ratio | footfall -j 2 s | ratio |")
print("|---:|---:|---:|---:|---:|---:|")
for i, ((g, a, b), x, y) in enumerate(zip(rows, r1, r2), 1):
    print(f"| {i} | {g:.2f} | {a:.2f} | {x:.1f}× | {b:.2f} | {y:.1f}× |")
print()
print(f"* median ratio, 1 thread: **{statistics.median(r1):.1f}×** (range {min(r1):.1f}–{max(r1):.1f}×)")
print(f"* median ratio, 2 threads: **{statistics.median(r2):.1f}×** (range {min(r2):.1f}–{max(r2):.1f}×)")
PY
