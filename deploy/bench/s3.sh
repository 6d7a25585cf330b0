#!/usr/bin/env bash
# What publishing to an object store costs: `footfall aggregate` of the same
# events into a local directory and into the local S3 server
# (deploy/s3/local-s3.sh), alternately, each time with a new group and a new
# warehouse (or prefix).
#
#   1. N generated combined lines (150,000 visitors, 3 days) ingested into
#      the local broker;
#   2. REPS pairs of runs: local directory, then s3://$FOOTFALL_S3_BUCKET/<new prefix>
#      with its staging directory: seconds and peak RSS of each;
#   3. the last pair's S3 warehouse restored into a new staging directory
#      (`footfall aggregate --restore`): seconds and peak RSS;
#   4. the medians and their ratio; the last pair's warehouses compared (the
#      objects against the local run's files and the restored ones, byte for
#      byte).
#
#   bash deploy/bench/s3.sh [N] [REPS]     # default: 1000000 3
#
# Needs a release build (built here), python3 with pyarrow, a broker at
# $FOOTFALL_KAFKA_BROKERS (default 127.0.0.1:9092) and the S3 server: its
# variables (`deploy/s3/local-s3.sh env`) are taken from the script when unset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N="${1:-1000000}"
REPS="${2:-3}"
if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
    eval "$(bash deploy/s3/local-s3.sh env)"
fi
bench_init s3bench
T="bench.s3.$$.$(date +%s)"
AGG=("$FF" aggregate --brokers "$B" --topic "$T")

say "$N events over 3 days: generating and ingesting"
fill "$T" "$N" 3

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
LOCAL=()
S3=()
for ((i = 1; i <= REPS; i++)); do
    rm -rf "$W/local" "$W/staging"
    say "pair $i/$REPS: local directory"
    read -r secs kb <<< "$(timed "${AGG[@]}" --group "$T.local.$i" --warehouse "$W/local")"
    LOCAL+=("$secs")
    echo "  $secs s, peak $((kb / 1024)) MB" >&2
    PREFIX="$T.$i"
    say "pair $i/$REPS: s3://$FOOTFALL_S3_BUCKET/$PREFIX"
    read -r secs kb <<< "$(timed "${AGG[@]}" --group "$T.s3.$i" --warehouse "s3://$FOOTFALL_S3_BUCKET/$PREFIX" --staging "$W/staging")"
    S3+=("$secs")
    echo "  $secs s, peak $((kb / 1024)) MB" >&2
done

say "the last pair's staging directory lost: restored from s3://$FOOTFALL_S3_BUCKET/$PREFIX"
rm -rf "$W/restored"
read -r RESTORE_S kb <<< "$(timed "${AGG[@]}" --warehouse "s3://$FOOTFALL_S3_BUCKET/$PREFIX" --staging "$W/restored" --restore)"
echo "  $RESTORE_S s, peak $((kb / 1024)) MB" >&2

say "the last pair's warehouses"
# The objects against the local run's files and the restored ones; then every prefix of this run is removed.
python3 - "$W/local" "$W/restored" "$FOOTFALL_S3_BUCKET/$PREFIX" "$FOOTFALL_S3_BUCKET" "$T" "$REPS" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "python"))
import footfall_support as ff
local, restored, prefix, bucket, topic, reps = sys.argv[1:]
fs = ff.s3_filesystem(ff.require_s3_env())
objects = ff.s3_tables(fs, prefix)
differ = []
for name, files in (("local", ff.published_files(local)), ("restored", ff.published_files(restored))):
    differ += [f"{name}: {k}" for k in sorted(objects.keys() | files.keys()) if objects.get(k) != files.get(k)]
print(f"  {len(objects)} objects, {sum(map(len, objects.values())) / 1e6:.1f} MB; differing from the local and the restored files: {len(differ)}", file=sys.stderr)
for i in range(1, int(reps) + 1):
    fs.delete_dir(f"{bucket}/{topic}.{i}")
sys.exit(1 if differ else 0)
EOF

L="$(printf '%s\n' "${LOCAL[@]}" | median)"
S="$(printf '%s\n' "${S3[@]}" | median)"
printf '\nlocal directory: %s s (runs: %s)\ns3 (local MinIO): %s s (runs: %s)\nratio s3/local: %.2f\nrestore of the last s3 warehouse: %s s\n' \
    "$L" "${LOCAL[*]}" "$S" "${S3[*]}" "$(echo "$S / $L" | bc -l)" "$RESTORE_S"
