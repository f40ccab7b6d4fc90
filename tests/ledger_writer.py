"""A ledger writer process for the concurrency tests: appends N usage events and prints
each acknowledged request id (after its commit) on its own line.

    python -m tests.ledger_writer PATH|URL N TAG
"""

from __future__ import annotations

import sys

from etoro_nb.ledger import Ledger


def main() -> None:
    path, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # A postgresql:// URL: the shared ledger (tests/test_ledger_postgres.py).
    ledger = Ledger.open(path) if path.startswith("postgresql://") else Ledger(path, seal_threshold=None)
    for i in range(count):
        request_id = f"{tag}-{i}"
        ledger.append_usage(phase="intent", request_id=request_id, attempt=1, principal="agent",
                            environment="sandbox", method="GET", route="/api/v1/me",
                            operation_id="getAuthenticatedUserProfile")
        sys.stdout.write(request_id + "\n")
        sys.stdout.flush()
    ledger.close()


if __name__ == "__main__":
    main()
