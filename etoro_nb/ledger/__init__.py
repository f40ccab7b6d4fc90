"""The usage ledger: the compliance record of every request made through etoro_nb.

See ``core`` for durability, concurrency and the hash chain; ``sealing`` for Parquet
segments; ``drafts`` for the Parquet copies of live rows that readers use; ``scan`` for
reading; ``verify`` for checking it end to end.
"""

from etoro_nb.ledger.core import DEFAULT_SEAL_THRESHOLD, Durability, Ledger, Verification, chain_hash

__all__ = ["DEFAULT_SEAL_THRESHOLD", "Durability", "Ledger", "Verification", "chain_hash"]
