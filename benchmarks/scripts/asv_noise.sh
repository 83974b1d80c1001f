#!/bin/bash
# The noise band of a machine: two cheap benchmarks, 5 asv invocations in --quick mode (one sample
# each, as the committed --quick results are) and 5 in asv's default mode (median of its samples
# ± half the interquartile range), nothing saved (--dry-run). Run from the repository root in an
# environment with asv and the packages (e.g. nox -s bench's venv), through the CPU slot:
#   /tmp/p2/slot.sh benchmarks/scripts/asv_noise.sh > LOG 2>&1
#   python benchmarks/scripts/asv_noise_summary.py LOG
# The committed run (2026-11-30, benchmarks/results/noise/) used this script with ASV set to the
# bench venv's asv, in a frozen worktree of 6fe83e5.
cd "$(dirname "$0")/.."
ASV=${ASV:-asv}
MACHINE=${ASV_MACHINE:-cpu-2core-amd-epyc}
B1="bench_objectives.LogitTerms.time_forward_backward\('cross_entropy', \(8, 256, 4096\), 'fp32'\)"
B2="bench_core.RMSNorm.time_forward_backward\('torch', \(2048, 1024\)\)"
echo "# asv noise measurement: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), OMP_NUM_THREADS=$OMP_NUM_THREADS, $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo)"
for mode in quick full; do
  for i in 1 2 3 4 5; do
    extra=""; [ $mode = quick ] && extra="--quick"
    echo "## mode=$mode run=$i start=$(date -u +%T) loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
    $ASV run --python=same --machine "$MACHINE" --dry-run $extra --bench "$B1" --bench "$B2" 2>&1
  done
done
echo "# end $(date -u +%FT%TZ)"
