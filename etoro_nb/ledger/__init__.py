"""The usage ledger: the compliance record of every request made through etoro_nb.

See ``core`` for durability, concurrency and the hash chain; ``writer`` for when an event
is committed; ``sealing`` for Parquet segments; ``drafts`` for the Parquet copies of live
rows that readers use; ``scan`` for reading; ``verify`` for checking it end to end;
``postgres`` for the shared PostgreSQL ledger of a team (``Ledger.open(URL)``).
"""

from etoro_nb.ledger.chain import Verification, chain_hash
from etoro_nb.ledger.core import DEFAULT_SEAL_THRESHOLD, Durability, Ledger

__all__ = ["DEFAULT_SEAL_THRESHOLD", "Durability", "Ledger", "Verification", "chain_hash"]
