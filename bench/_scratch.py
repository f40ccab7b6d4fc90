"""A scratch folder for one benchmark run, removed when the run ends (even on an error), so
benchmarks leave no ledgers or Parquet files behind in the temporary folder."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str = "etoro-nb-bench-") -> Path:
    """A new temporary folder, deleted with its contents at interpreter exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
