"""The ``etoro-nb`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from etoro_nb.lab import connect_hint
from etoro_nb.sandbox.config import DEFAULT_API_KEY, DEFAULT_USER_KEY, Faults, SandboxConfig
from etoro_nb.sandbox.validation import parse_datetime

if TYPE_CHECKING:
    from etoro_nb.ledger import Ledger


def _clock(value: str) -> datetime:
    try:
        return parse_datetime(value, "--clock")
    except Exception as exc:
        raise argparse.ArgumentTypeError(
            f"--clock takes an ISO 8601 date-time such as 2026-01-05T09:00:00Z ({exc})"
        ) from None


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, got {value}")
    return rate


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etoro-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_sandbox(commands)
    _add_ledger(commands)
    _add_lab(commands)
    _add_report(commands)
    from etoro_nb.mcp.cli import add_parser as add_mcp  # argparse only: the SDK loads on run

    add_mcp(commands)
    return parser


def _add_sandbox(commands: Commands) -> None:
    sandbox = commands.add_parser("sandbox", help="the local eToro-compatible sandbox")
    sandbox_cmds = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve = sandbox_cmds.add_parser("serve", help="serve the sandbox over HTTP until Ctrl-C")
    d = SandboxConfig()
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--db", default=":memory:",
                       help="SQLite file for the sandbox state (default: in memory)")
    serve.add_argument("--seed", type=int, default=d.seed, help="seed for prices and ids")
    serve.add_argument("--clock", type=_clock, default=None,
                       help="start a simulated clock at this instant (default: wall clock)")
    serve.add_argument("--api-key", default=DEFAULT_API_KEY)
    serve.add_argument("--user-key", default=DEFAULT_USER_KEY)
    serve.add_argument("--read-limit", type=int, default=d.read_limit)
    serve.add_argument("--write-limit", type=int, default=d.write_limit)
    serve.add_argument("--limit-window", type=float, default=d.limit_window,
                       help="quota window in seconds")
    serve.add_argument("--min-investment", type=float, default=d.min_investment)
    serve.add_argument("--virtual-balance", type=float, default=d.virtual_balance)
    serve.add_argument("--max-tokens", type=int, default=d.max_tokens_per_portfolio)
    serve.add_argument("--latency-ms", type=float, default=0.0)
    serve.add_argument("--fail-rate", type=_rate, default=0.0)
    serve.add_argument("--drop-after-commit-rate", type=_rate, default=0.0)
    serve.add_argument("--partial-create-rate", type=_rate, default=0.0)
    serve.add_argument("--trust-proxy", action="store_true",
                       help="take the client address from X-Forwarded-For sent by a proxy on "
                            "this machine (default: ignore the header)")
    serve.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                       help="largest request body; 413 beyond it (default: 1 MiB)")


def _add_ledger(commands: Commands) -> None:
    ledger = commands.add_parser("ledger", help="the usage ledger")
    ledger_cmds = ledger.add_subparsers(dest="ledger_command", required=True)
    synth = ledger_cmds.add_parser("synth", help="write a deterministic synthetic ledger")
    synth.add_argument("--events", type=int, required=True, help="usage events to write")
    synth.add_argument("--out", required=True, help="ledger file to create")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--portfolios", type=int, default=20)
    synth.add_argument("--days", type=int, default=90)
    verify = ledger_cmds.add_parser(
        "verify", help="check a ledger's hash chain end to end, and against signed checkpoints",
        description="Without --checkpoint this proves internal consistency only; with it, that "
                    "no row up to the checkpointed heads was removed or rewritten. Exit 0: "
                    "verified; 1: verification failed; 2: bad arguments or missing files.")
    verify.add_argument("path")
    verify.add_argument("--checkpoint", metavar="FILE",
                        help="a checkpoint file (JSON lines) written by `ledger checkpoint` or "
                             "by a client")
    verify.add_argument("--key", metavar="KEY",
                        help="the checkpoint key file or its .pub (default: "
                             "ETORO_NB_CHECKPOINT_KEY, else ~/.etoro-nb/checkpoint.key)")
    checkpoint = ledger_cmds.add_parser(
        "checkpoint", help="verify a ledger, then append its signed chain heads to a file",
        description="Verify the ledger (against FILE's earlier checkpoints of it, if any), then "
                    "append a checkpoint of its chain heads signed with KEY (created on first "
                    "use, mode 0600, with KEY.pub for auditors). Keep KEY and FILE apart from "
                    "the ledger.")
    checkpoint.add_argument("path")
    checkpoint.add_argument("--to", required=True, metavar="FILE", help="the checkpoint file")
    checkpoint.add_argument("--key", metavar="KEY",
                            help="the signing key file (default: ETORO_NB_CHECKPOINT_KEY, else "
                                 "~/.etoro-nb/checkpoint.key)")
    seal = ledger_cmds.add_parser("seal", help="move live history into Parquet segments")
    seal.add_argument("path")
    init_pg = ledger_cmds.add_parser(
        "init-postgres", help="set up a shared PostgreSQL ledger and its append-only writer role",
        description="Connecting as the database's administrator (URL), apply the ledger's "
                    "migrations and make (if missing) the writer role, which may only read and "
                    "INSERT. Writers then connect as it. Exit 0: done; 2: it failed.")
    init_pg.add_argument("url", help="postgresql://ADMIN@HOST:PORT/DATABASE (a password is "
                                     "better kept in ~/.pgpass or PGPASSWORD)")
    init_pg.add_argument("--writer-role", required=True, metavar="NAME")
    init_pg.add_argument("--reader-role", metavar="NAME", help="a role that may only read")
    _add_export(ledger_cmds)


def _add_export(ledger_cmds: Commands) -> None:
    export = ledger_cmds.add_parser(
        "export", help="add a ledger's sealed history to a Parquet dataset (incremental)",
        description="Seal the ledger's live rows, then add its segments the dataset lacks, "
                    "hive-partitioned by table and UTC day, with a manifest of their hashes and "
                    "chain heads. Many ledgers may export into one dataset, at once; running it "
                    "again adds only what is new. Check it with `etoro-nb ledger verify DIR`. "
                    "LEDGER may be a postgresql:// URL: a PostgreSQL ledger is never sealed, so "
                    "the rows committed since its last export are added, in export batches.")
    export.add_argument("path", metavar="LEDGER", help="a ledger file or a postgresql:// URL")
    export.add_argument("--to", required=True, metavar="DIR", help="the dataset folder")
    export.add_argument("--owner", help="the ledger's label in the dataset (default: the label "
                                        "it has there, else the file name without its suffix, "
                                        "or the database's name)")
    export.add_argument("--no-seal", action="store_true",
                        help="export only what is sealed already (leave live rows live)")


def _add_lab(commands: Commands) -> None:
    lab = commands.add_parser(
        "lab", help="JupyterLab on the templates, with the sandbox serving beside it",
        description="Serve the sandbox on --port and open JupyterLab on the notebook folder; "
                    "arguments after -- go to JupyterLab (e.g. -- --no-browser).")
    lab.add_argument("notebooks", nargs="?", default="notebooks")
    lab.add_argument("--port", type=int, default=8765, help="the sandbox's port")
    lab.add_argument("--seed", type=int, default=SandboxConfig().seed)
    lab.add_argument("--open", default="00-cockpit.ipynb", metavar="NOTEBOOK",
                     help="the notebook JupyterLab opens on, in the folder ('' for none)")


def _add_report(commands: Commands) -> None:
    report = commands.add_parser(
        "report", help="run templates with parameters, render each to HTML",
        description="Run one template into OUT.html, or several into the folder OUT (one "
                    "NAME.html each). Parameters go to every template that runs.")
    report.add_argument("notebook", nargs="+")
    report.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a parameter (JSON value, else text)")
    report.add_argument("-o", "--output", required=True,
                        help="the HTML report to write; a folder when several notebooks run")
    report.add_argument("--kernel", default="python3")


def serve_config(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox configuration ``sandbox serve`` flags describe (ValueError if invalid)."""
    return SandboxConfig(
        db=args.db, seed=args.seed, clock=args.clock, api_key=args.api_key,
        user_key=args.user_key, read_limit=args.read_limit, write_limit=args.write_limit,
        limit_window=args.limit_window, min_investment=args.min_investment,
        virtual_balance=args.virtual_balance, max_tokens_per_portfolio=args.max_tokens,
        faults=Faults(args.latency_ms, args.fail_rate, args.drop_after_commit_rate,
                      args.partial_create_rate),
        trust_proxy=args.trust_proxy, max_body_bytes=args.max_body_bytes,
    )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from etoro_nb.sandbox.app import create_app
    from etoro_nb.sandbox.server import quiet_injected_drops, uvicorn_options

    try:
        config = serve_config(args)
    except ValueError as exc:
        print(f"etoro-nb sandbox serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    base_url = f"http://{args.host}:{args.port}"
    print(connect_hint(base_url, config))
    print(f"  contract: {base_url}/openapi.json   state: {config.db}   seed: {config.seed}")
    if config.trust_proxy:
        print("  client addresses: from X-Forwarded-For of a proxy on this machine (--trust-proxy)")
    sys.stdout.flush()
    quiet_injected_drops()
    uvicorn.run(app, host=args.host, port=args.port, **uvicorn_options(config))
    return 0


def ledger_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from etoro_nb.errors import LedgerError
    from etoro_nb.ledger import Ledger
    from etoro_nb.ledger.synth import synthesize

    try:
        if args.ledger_command == "synth":
            if Path(args.out).exists():
                print(f"etoro-nb ledger synth: {args.out} exists; choose a new path",
                      file=sys.stderr)
                return 2
            ledger = synthesize(args.out, events=args.events, seed=args.seed,
                                portfolios=args.portfolios, days=args.days)
            where = ledger.where if ledger.backend != "sqlite" else args.out  # never a password
            print(f"wrote {args.events} usage events to {where} "
                  f"({len(ledger.segments())} sealed segments)")
            ledger.close()
            return 0
        if args.ledger_command == "init-postgres":
            return init_postgres_command(args)
        if args.ledger_command == "verify" and args.key and not args.checkpoint:
            print("etoro-nb ledger verify: --key verifies checkpoints; give --checkpoint FILE "
                  "too", file=sys.stderr)
            return 2
        if args.ledger_command == "verify" and Path(args.path).is_dir():
            return dataset_command(args)
        from etoro_nb.ledger.pg_connect import is_postgres

        if not is_postgres(args.path) and not Path(args.path).is_file():
            print(f"etoro-nb ledger {args.ledger_command}: no ledger at {args.path}",
                  file=sys.stderr)
            return 2
        if args.ledger_command == "export":
            return dataset_command(args)
        with Ledger.open(args.path) as ledger:
            if args.ledger_command == "seal":
                made = [s for s in (ledger.seal(t) for t in ("usage_events",
                                                            "lifecycle_events")) if s]
                print(f"sealed {sum(s['rows'] for s in made)} rows into {len(made)} segments")
                return 0
            if args.ledger_command == "checkpoint":
                return checkpoint_command(ledger, Path(args.to), args.key)
            result = ledger.verify(args.checkpoint, key=args.key)
            print(result)
            return 0 if result.ok else 1
    except (LedgerError, ValueError) as exc:
        print(f"etoro-nb ledger: {exc}", file=sys.stderr)
        return 2


def init_postgres_command(args: argparse.Namespace) -> int:
    from etoro_nb.ledger.pg_admin import init_postgres
    from etoro_nb.ledger.pg_connect import is_postgres, redact

    if not is_postgres(args.url):
        print("etoro-nb ledger init-postgres: URL must be a postgresql:// URL", file=sys.stderr)
        return 2
    applied = init_postgres(args.url, args.writer_role, args.reader_role)
    print(f"the ledger at {redact(args.url)} is ready ({len(applied)} migrations applied now); "
          f"writers connect as {args.writer_role}, which may only read and INSERT")
    return 0


def dataset_command(args: argparse.Namespace) -> int:
    """``ledger export LEDGER --to DIR`` and ``ledger verify DIR`` (a dataset); the
    arguments are checked by ``ledger_command``."""
    from etoro_nb import dataset

    if args.ledger_command == "verify":
        from etoro_nb.ledger import checkpoint as cp

        checkpoints = None
        if args.checkpoint:
            try:
                checkpoints = cp.read_checkpoints(args.checkpoint, cp.public_key(args.key))
            except cp.CheckpointError as exc:
                print(f"dataset verification FAILED: {exc}")
                return 1
        result = dataset.verify(args.path, checkpoints, source=Path(args.checkpoint or "-").name)
        print(result)
        return 0 if result.ok else 1
    print(dataset.export(args.path, args.to, owner=args.owner, seal=not args.no_seal))
    return 0


def checkpoint_command(ledger: Ledger, to: Path, key: str | None) -> int:
    """Sign the ledger's heads, but only once it verifies (against the file's earlier
    checkpoints of it too): a checkpoint of a tampered ledger would vouch for the tampering."""
    from etoro_nb.ledger import checkpoint as cp
    from etoro_nb.ledger.verify import verify_with

    file = cp.key_path(key)
    cp.refuse_beside(ledger, file)
    signing = cp.signing_key(file)
    earlier = None
    if to.exists():
        try:
            every = cp.read_checkpoints(to, signing.public_key())
        except cp.CheckpointError as exc:
            print(f"ledger verification FAILED: {exc}")
            print(f"nothing signed: {to} must be sound before a checkpoint is added to it")
            return 1
        earlier = [c for c in every if c.ledger_id == cp.ledger_identity(ledger)] or None
    result = verify_with(ledger, earlier, source=to.name)
    if not result.ok:
        print(result)
        print("nothing signed: a checkpoint of this ledger would vouch for what is wrong with it")
        return 1
    made = cp.write_checkpoint(ledger, to, signing)
    print(f"{result}\nwrote the {made.describe()} to {to}, signed with {file} "
          f"(verify with {file}.pub, public key {made.key})")
    return 0


def lab_command(args: argparse.Namespace) -> int:
    from etoro_nb.lab import run_lab

    try:
        return run_lab(Path(args.notebooks).resolve(), config=SandboxConfig(seed=args.seed),
                       port=args.port, lab_args=args.lab_args, open_notebook=args.open or None)
    except (FileNotFoundError, OSError) as exc:
        print(f"etoro-nb lab: {exc}", file=sys.stderr)
        return 2


def report_command(args: argparse.Namespace) -> int:
    from etoro_nb.report import parse_value, run_report

    parameters = {name: parse_value(value) for name, value in args.parameter}
    missing = [n for n in args.notebook if not Path(n).is_file()]
    if missing:
        print(f"etoro-nb report: no notebook at {', '.join(missing)}", file=sys.stderr)
        return 2
    several = len(args.notebook) > 1 or Path(args.output).is_dir()
    failed = 0
    for notebook in args.notebook:
        out = Path(args.output) / f"{Path(notebook).stem}.html" if several else Path(args.output)
        started = time.perf_counter()
        try:
            html_path, executed = run_report(notebook, out, parameters=parameters,
                                             kernel=args.kernel)
        except Exception as exc:  # papermill's PapermillExecutionError names the failing cell
            print(f"etoro-nb report: {notebook} failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"wrote {html_path} in {time.perf_counter() - started:.1f} s "
              f"(executed notebook: {executed})")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:split])
    args.lab_args = argv[split + 1:]  # what follows -- goes to JupyterLab
    if args.command == "report":
        return report_command(args)
    if args.command == "lab":
        return lab_command(args)
    if args.command == "sandbox" and args.sandbox_command == "serve":
        return serve(args)
    if args.command == "ledger":
        return ledger_command(args)
    if args.command == "mcp":
        from etoro_nb.mcp.cli import run as mcp_command

        return mcp_command(args)
    return 2  # pragma: no cover - argparse rejects anything else


if __name__ == "__main__":
    sys.exit(main())
