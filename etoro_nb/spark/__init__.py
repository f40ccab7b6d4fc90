"""The team audit on Apache Spark, for histories past one machine (the ``spark`` extra:
``pip install 'etoro-nb[spark]'``, and Java 17 or later).

The same results as ``frames``, as Spark DataFrames over a dataset written by
``etoro-nb ledger export`` (``etoro_nb.dataset``): ``usage`` and ``requests`` (as
``frames.usage`` / ``frames.requests``), ``tokens`` and ``grants`` (as
``frames.tokens_from_ledger`` / ``grants_from_ledger``), ``least_privilege`` and
``activity`` (as ``frames.least_privilege`` / ``frames.activity``). Rows are equal to
polars' on the same dataset; their order is Spark's (sort before comparing).

Examples
--------
>>> from etoro_nb import spark as audit                                  # doctest: +SKIP
>>> s = audit.session()                                                  # doctest: +SKIP
>>> lp = audit.least_privilege(audit.grants(s, "team-dataset", now=end),
...                            audit.usage(s, "team-dataset"))          # doctest: +SKIP
>>> lp.filter("verdict = 'unused'").show()                               # doctest: +SKIP
"""

try:
    import pyspark  # noqa: F401
except ImportError:  # pragma: no cover - the extra is in the test environment
    raise ImportError("etoro_nb.spark needs Apache Spark's Python package: "
                      "pip install 'etoro-nb[spark]' (and Java 17 or later)") from None

from etoro_nb.spark.audit import activity, least_privilege
from etoro_nb.spark.read import requests, scan, session, usage
from etoro_nb.spark.tokens import grants, tokens

__all__ = ["activity", "grants", "least_privilege", "requests", "scan", "session", "tokens",
           "usage"]
