"""Import time: ``import etoro_nb`` against importing the dependencies it needs.

Each round starts fresh interpreters, one importing polars, httpx and pydantic (the
baseline: what the client and the frames cannot do without), one importing etoro_nb, and
one importing etoro_nb and touching ``etoro_nb.connect`` (so the client, httpx and the
models load too, as for a user about to connect), alternating so drift affects all alike.
Prints the medians and the ratios (target: at most 1.3x), and which heavy modules
``import etoro_nb`` pulled in (none expected: the client, the sandbox's server, plotly and
cryptography load when first used).

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
WITH_CLIENT = "import etoro_nb; etoro_nb.connect"  # the client loads on first use: loaded here
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
    base, subject, client = [], [], []
    for _ in range(args.rounds):
        base.append(timed(BASELINE))
        subject.append(timed(SUBJECT))
        client.append(timed(WITH_CLIENT))
    b, s, c = (statistics.median(x) for x in (base, subject, client))
    print(f"import polars, httpx, pydantic:     {b * 1000:.1f} ms (median of {args.rounds})")
    print(f"import etoro_nb:                    {s * 1000:.1f} ms")
    print(f"import etoro_nb, client loaded too: {c * 1000:.1f} ms")
    print(f"ratio: {s / b:.2f}x (target: at most 1.3x); with the client loaded: {c / b:.2f}x")
    loaded = heavy_modules()
    print("heavy modules loaded by import etoro_nb: " + (", ".join(loaded) or "none"))


if __name__ == "__main__":
    main()
