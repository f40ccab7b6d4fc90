"""An open Parquet dataset of sealed ledger history, for a team's audit.

``export(LEDGER, DIR)`` (``etoro-nb ledger export LEDGER --to DIR``) adds a ledger's
sealed segments to the dataset at ``DIR``, hive-partitioned by table and UTC day, with a
manifest per ledger (``layout``) of the segments' ``segments`` rows, the data files made
of them with their SHA-256, and the chain heads. Many ledgers export into one dataset,
each as often as wanted: only what is new is added.

``verify(DIR)`` (``etoro-nb ledger verify DIR``) checks the files and every chain.
``Dataset(DIR)`` reads it: ``Dataset.scan`` has ``Ledger.scan``'s surface, so the
``frames`` loaders take a dataset where they take a ledger; ``etoro_nb.spark`` reads the
same files with Apache Spark.
"""

from etoro_nb.dataset.export import export
from etoro_nb.dataset.read import Dataset
from etoro_nb.dataset.verify import DatasetVerification, verify
from etoro_nb.dataset.writing import ExportResult

__all__ = ["Dataset", "DatasetVerification", "ExportResult", "export", "verify"]
