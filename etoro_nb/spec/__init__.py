"""The package's own copy of eToro's agent-portfolio subset document (v1.244.0)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SUBSET_FILE = "agent-portfolios-subset.openapi.json"


@cache
def subset_bytes() -> bytes:
    """The document exactly as shipped."""
    return resources.files(__package__).joinpath(SUBSET_FILE).read_bytes()


def load_subset() -> dict[str, Any]:
    """The document parsed; a fresh copy each call, so callers may change it."""
    return json.loads(subset_bytes())  # type: ignore[no-any-return]
