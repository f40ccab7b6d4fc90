"""Import time: ``import etoro_nb`` against importing the dependencies it needs.

Each round starts two fresh interpreters, one importing polars, httpx and pydantic (the
baseline: what the client and the frames cannot do without) and one importing etoro_nb,
alternating so drift affects both alike. Prints the medians and their ratio (target: at
most 1.3x), and which heavy modules ``import etoro_nb`` pulled in (none expected: the
sandbox's server and plotly load when first used).

    .venv/bin/python bench/import_time.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

TIMED = ("import time; t = time.perf_counter(); {stmt}; "
         "print(time.perf_counter() - t)")
BASELINE = "import polars, httpx, pydantic"
SUBJECT = "import etoro_nb"
HEAVY = ("uvicorn", "starlette", "plotly", "ipywidgets", "pandas")


def timed(stmt: str) -> float:
    out = subprocess.run([sys.executable, "-c", TIMED.format(stmt=stmt)], check=True,
                         capture_output=True, text=True).stdout
    return float(out)


def heavy_modules() -> list[str]:
    probe = (f"import sys, etoro_nb; print(','.join(m for m in {HEAVY!r} "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout.strip()
    return [m for m in out.split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    timed(SUBJECT)  # warm the file cache and the bytecode once, for both sides
    base, subject = [], []
    for _ in range(args.rounds):
        base.append(timed(BASELINE))
        subject.append(timed(SUBJECT))
    b, s = statistics.median(base), statistics.median(subject)
    print(f"import polars, httpx, pydantic: {b * 1000:.1f} ms (median of {args.rounds})")
    print(f"import etoro_nb:                {s * 1000:.1f} ms")
    print(f"ratio: {s / b:.2f}x (target: at most 1.3x)")
    loaded = heavy_modules()
    print("heavy modules loaded by import etoro_nb: " + (", ".join(loaded) or "none"))


if __name__ == "__main__":
    main()
