"""``import etoro_nb`` stays light: the sandbox's server and plotly load on first use."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("uvicorn", "starlette", "plotly", "ipywidgets", "cryptography")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout
    return set(out.split())


def test_import_etoro_nb_loads_neither_the_server_nor_plotly() -> None:
    assert _loaded_after("import etoro_nb") == set()


def test_a_live_client_never_imports_the_sandbox_server() -> None:
    code = ("import etoro_nb as enb\n"
            "c = enb.EtoroClient(base_url='https://example.invalid', api_key='a', user_key='b', "
            "environment='live')\nc.close()")
    assert _loaded_after(code) == set()


def test_lazy_names_load_on_first_use() -> None:
    assert _loaded_after("import etoro_nb as enb\nenb.charts.activity") == set()  # drawing loads it
    assert {"uvicorn", "starlette"} <= _loaded_after("import etoro_nb as enb\nenb.sandbox.start")
