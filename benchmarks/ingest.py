"""Import throughput and peak memory, end to end into PostgreSQL.

A generated Slack export (``tests/builders/slack.py``) and a Signal backup
(``tests/signal_writer.py``), each at two sizes (full and a quarter), imported by the real service
(``ingest.services.import_export``) into the database in DATABASE_URL. Each import runs in its
own child process so that its peak RSS (VmHWM) is its own: flat memory means the two
sizes peak alike. Every import starts from an empty corpus and its export is deleted afterwards
(``services.delete_export``, timed too: the staff page's "Delete export").
``--parser-baseline`` also times the parser alone (no database) and the database alone (rows
built beforehand, then streamed through the importer's loader), to show where the time goes,
and for Signal the decryption alone (every frame decrypted, every frame and payload MAC-checked).
"py CPU" is the importing process's CPU time (parser, row building, the COPY writer thread) plus
that of its own child processes (a big Signal backup is replayed into SQLite by one), "pg CPU"
that of its PostgreSQL backend (when the server runs on this machine): on two cores the import
cannot go faster than half their sum. Peak RSS is the importing process's own.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/joe_bench \\
        .venv/bin/python benchmarks/ingest.py [--slack 1000000] [--signal 200000]

Generated files are cached in ``--workdir`` (default /tmp/joe-ingest-bench).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSPHRASE = "000001111122222333334444455555"  # noqa: S105 (the test backups' passphrase)


def build_files(kind: str, n: int, workdir: Path) -> Path:
    if kind == "slack":
        from tests.builders.slack import build_slack, synthetic_stream

        path = workdir / f"slack-{n}.zip"
        if not path.exists():
            users, stream = synthetic_stream(n, channels=20, users=30)
            build_slack(path.with_suffix(".tmp"), users=users, stream=stream, as_zip=True)
            path.with_suffix(".tmp").rename(path)
    else:
        from tests.signal_writer import write_backup

        path = workdir / f"signal-{n}.backup"
        if not path.exists():
            write_backup(path.with_suffix(".tmp"), n_messages=n, seed=1)
            path.with_suffix(".tmp").rename(path)
    return path


def peak_rss_kb() -> int:
    """This process's peak resident memory. (Not ru_maxrss: a child inherits the parent's.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def backend_cpu_seconds(connection) -> float | None:
    """CPU time used so far by this connection's PostgreSQL backend, if it runs on this machine."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(kind: str, path: Path, mode: str) -> dict:
    """One import, bare parse or (Signal) bare decryption in this process; returns its figures."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joe_site.settings")
    django.setup()
    from django.db import connection

    from ingest.models import Export, Message
    from ingest.parsers.detect import load_parser
    from ingest.parsers.records import MessageRecord
    from ingest.services import delete_export, import_export

    options = {"passphrase": PASSPHRASE} if kind == "signal" else {}
    base_rss = peak_rss_kb()
    if mode == "decrypt":
        # Reading, decrypting and MAC-checking every frame and payload, nothing more: the floor
        # for any Signal parse.
        from ingest.parsers.signal_crypto import FrameReader

        start, cpu = time.perf_counter(), cpu_seconds()
        with path.open("rb") as stream:
            for _ in FrameReader(stream, PASSPHRASE):
                pass
        seconds = time.perf_counter() - start
        return {"messages": None, "seconds": seconds, "base_rss_kb": base_rss,
                "peak_rss_kb": peak_rss_kb(), "cpu": cpu_seconds() - cpu,
                "pg_cpu": None}  # fmt: skip
    if mode == "load":
        # The database's share alone: the same file's rows, parsed and built beforehand (not
        # timed), streamed through the importer's loader in one transaction, then rolled back.
        from django.db import transaction

        from ingest.loader import MessageRow, message_loader

        ids: dict[str, int] = {}
        rows = [
            MessageRow(
                ids.setdefault(r.conversation_id, len(ids) + 1),
                ids.setdefault(r.identity_id, len(ids) + 1),
                0,
                kind,
                r.external_id,
                r.sent_at,
                r.text,
                r.reply_to or "",
            )  # fmt: skip
            for r in load_parser(kind)(path, **options)
            if type(r) is MessageRecord
        ]
        pg_before = backend_cpu_seconds(connection)
        start, cpu = time.perf_counter(), cpu_seconds()
        with transaction.atomic():
            with message_loader(export_id=0, source_kind=kind) as loader:
                for row in rows:
                    loader.add(row)
            seconds = time.perf_counter() - start
            cpu = cpu_seconds() - cpu
            pg_after = backend_cpu_seconds(connection)
            transaction.set_rollback(True)
        pg_cpu = pg_after - pg_before if pg_before is not None and pg_after is not None else None
        return {"messages": loader.inserted, "seconds": seconds, "base_rss_kb": base_rss,
                "peak_rss_kb": peak_rss_kb(), "cpu": cpu, "pg_cpu": pg_cpu}  # fmt: skip
    if mode == "parse":
        start, cpu = time.perf_counter(), cpu_seconds()
        found, first = 0, None
        for record in load_parser(kind)(path, **options):
            if first is None:  # Signal: the end of decrypt + replay; what follows is read-back
                first = time.perf_counter() - start
            found += type(record) is MessageRecord
        seconds = time.perf_counter() - start
        return {"messages": found, "seconds": seconds, "base_rss_kb": base_rss,
                "peak_rss_kb": peak_rss_kb(), "cpu": cpu_seconds() - cpu,
                "pg_cpu": None, "first_record": first}  # fmt: skip
    if connection.vendor != "postgresql":
        sys.exit("DATABASE_URL must point at PostgreSQL for this benchmark.")
    if Message.objects.exists():
        sys.exit("The database already holds messages: use an empty database for the benchmark.")
    export = Export.objects.create(original_name=path.name, kind=kind, keep_file=True)
    pg_before = backend_cpu_seconds(connection)
    start, cpu = time.perf_counter(), cpu_seconds()
    export = import_export(export_id=export.pk, path=path, **options)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    pg_after = backend_cpu_seconds(connection)
    pg_cpu = pg_after - pg_before if pg_before is not None and pg_after is not None else None
    peak = peak_rss_kb()
    if export.status != "succeeded":
        sys.exit(f"The import failed: {export.error}")
    start = time.perf_counter()
    delete_export(export_id=export.pk)
    delete_seconds = time.perf_counter() - start
    # Leave the next import a table like a fresh site's, not one full of the dead rows of this
    # one (autovacuum may not get to it between runs: 1M dead rows made the next import's
    # index work half as slow again).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ingest_message")
    return {"messages": export.messages_count, "seconds": seconds, "base_rss_kb": base_rss,
            "peak_rss_kb": peak, "cpu": cpu, "pg_cpu": pg_cpu,
            "delete_seconds": delete_seconds}  # fmt: skip


def run_child(kind: str, path: Path, mode: str, workers: str = "0") -> dict:
    args = [sys.executable, __file__, "--child", kind, str(path), "--mode", mode]
    env = {**os.environ, "JOE_INGEST_WORKERS": workers}
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _workers_label(setting: str) -> str:
    if setting == "0":
        return ""
    if setting == "auto":
        from ingest.parsers.slack_workers import auto_workers

        cores = len(os.sched_getaffinity(0))
        return f", {auto_workers(cores)} worker processes (auto, {cores} cores)"
    return f", {setting} worker process" + ("es" if setting != "1" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slack", type=int, default=1_000_000, help="messages (0: skip)")
    parser.add_argument("--signal", type=int, default=200_000, help="messages (0: skip)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/joe-ingest-bench"))
    parser.add_argument("--parser-baseline", action="store_true", help="also time parsing alone")
    parser.add_argument(
        "--workers",
        default="0,auto",
        help="Slack: import once per JOE_INGEST_WORKERS value in this comma-separated list "
        "(0, the first, is the baseline: parsing in the importing process)",
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="import", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.mode)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"{'source':<8} {'messages':>10} {'MB':>7} {'seconds':>8} {'msg/s':>9} "
          f"{'base RSS':>9} {'peak RSS':>9} {'py CPU':>7} {'pg CPU':>7}  what")  # fmt: skip
    for kind, full in (("slack", args.slack), ("signal", args.signal)):
        if not full:
            continue
        for n in (full // 4, full):
            start = time.perf_counter()
            path = build_files(kind, n, args.workdir)
            built = time.perf_counter() - start
            workers = args.workers.split(",") if kind == "slack" else ["0"]
            runs = [("import" + _workers_label(w), "import", w) for w in workers]
            if args.parser_baseline:
                runs.append(("parser only", "parse", "0"))
                runs.append(("database only (rows built beforehand)", "load", "0"))
                if kind == "signal":
                    runs.append(("decryption only", "decrypt", "0"))
            messages, baseline = 0, None
            for label, mode, setting in runs:
                r = run_child(kind, path, mode, setting)
                ratio = ""
                if mode == "import":
                    baseline = baseline or r["seconds"]
                    if r["seconds"] != baseline:
                        ratio = f", {baseline / r['seconds']:.2f}x the first"
                messages = r["messages"] or messages  # decryption: the same file's messages
                print(
                    f"{kind:<8} {messages:>10,} {path.stat().st_size / 1e6:>7.1f} "
                    f"{r['seconds']:>8.1f} {messages / r['seconds']:>9,.0f} "
                    f"{r['base_rss_kb'] / 1024:>7.0f}MB {r['peak_rss_kb'] / 1024:>7.0f}MB "
                    f"{r['cpu']:>6.1f}s "
                    + (f"{r['pg_cpu']:>6.1f}s" if r["pg_cpu"] is not None else f"{'-':>7}")
                    + f"  {label}{ratio}"
                    + (
                        f" (first record after {r['first_record']:.1f} s)"
                        if r.get("first_record") and kind == "signal"
                        else ""
                    )
                    + (
                        f" (file built in {built:.0f} s)"
                        if mode == "import" and not ratio and built > 1
                        else ""
                    ),
                    flush=True,
                )
                if "delete_seconds" in r:
                    print(
                        f"{kind:<8} {messages:>10,} {'':>7} {r['delete_seconds']:>8.1f} "
                        f"{messages / r['delete_seconds']:>9,.0f}  {'':>47}  deleting that export",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
