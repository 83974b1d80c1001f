"""Summarize a log of ``benchmarks/scripts/asv_noise.sh``.

Per mode (``quick``: one sample per invocation; ``full``: asv's median of its samples, ± half its
interquartile range), each invocation's value and the spread across the invocations: median,
min, max, (max − min) / median and max / min.

    python benchmarks/scripts/asv_noise_summary.py benchmarks/results/noise/LOG
"""

import re
import statistics as st
import sys
from pathlib import Path

txt = Path(sys.argv[1]).read_text()
runs = re.split(r"^## ", txt, flags=re.M)[1:]
UNIT = {"ms": 1e-3, "μs": 1e-6, "us": 1e-6, "s": 1.0}


def val(s):
    m = re.match(r"([\d.]+)±([\d.]+)(ms|μs|us|s)$", s)
    f = UNIT[m.group(3)] * 1e3
    return float(m.group(1)) * f, float(m.group(2)) * f


res = {}
for r in runs:
    head = r.splitlines()[0]
    mode = re.search(r"mode=(\w+)", head).group(1)
    rms = re.search(r"torch\s+n/a\s+(\S+)", r).group(1)
    ce = re.search(r"cross_entropy\s+\(8, 256, 4096\)\s+(?:fp32\s+)?(\S+)", r).group(1)
    res.setdefault(mode, []).append((head, val(rms), val(ce)))
names = {
    1: "RMSNorm torch (2048, 1024) fwd+bwd",
    2: "LogitTerms cross_entropy (8, 256, 4096) fp32 fwd+bwd",
}
for mode, rows in res.items():
    print(f"mode {mode}:")
    for h, a, b in rows:
        print(f"  {h}: rms {a[0]:.2f} ± {a[1]:.2f} ms, ce {b[0]:.2f} ± {b[1]:.2f} ms")
    for i, name in names.items():
        v = [row[i][0] for row in rows]
        med = st.median(v)
        print(
            f"  {name}: n={len(v)} median {med:.2f} ms, min {min(v):.2f}, max {max(v):.2f}, "
            f"(max-min)/median {100 * (max(v) - min(v)) / med:.0f}%, "
            f"max/min {max(v) / min(v):.2f}x"
        )
