"""Export parsers: messages/s and peak memory per format, at two export sizes.

    .venv/bin/python benchmarks/parsers.py                      # 100k and 400k messages each
    .venv/bin/python benchmarks/parsers.py --sizes 20000,80000 --formats slack,whatsapp

For each format (Signal Android backups are measured in their own benchmark) it writes a
synthetic export with the test builders (tests/builders/), then parses it in a fresh Python
process so that one run's memory cannot hide in the next. That process reports its own peak
resident set size (VmHWM, which exec resets). Neither RUSAGE_CHILDREN (the largest child's peak)
nor ``wait4``'s ru_maxrss (Linux counts the forked parent's pages from before the exec) would do:
building the exports grows this process. The child also reports its resident size after imports,
before parsing, so the table shows what the parse itself added. Parsers stream, so the peak should
not grow with the export's size.

The exports are written to a temporary folder (or --keep DIR) and deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ("slack", "whatsapp", "telegram", "discord", "signal_desktop", "messenger", "imessage")
START = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
CHATTER = (
    "pub tonight who is in honestly cannot believe this the train is late again pizza or curry "
    "lol no way did you see that match I am never drinking again send the photos what time "
    "tomorrow bring snacks classic dave absolutely not my charger is gone again"
)
WORDS = CHATTER.split()
PEOPLE = ["Ann", "Ben", "Cat", "Dev", "Eve", "Finn", "Gus", "Hal"]


def sentence(i: int) -> str:
    """Chat-like text of 4 to 15 words, different for every i."""
    n = 4 + i % 12
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + f" {i}"


def when(i: int) -> dt.datetime:
    return START + dt.timedelta(seconds=37 * i)


# --- Export writers: each streams n messages to disk and returns the path to parse ----------------


def make_slack(folder: Path, n: int) -> Path:
    from tests.builders.slack import build_slack, synthetic_stream

    users, stream = synthetic_stream(n, channels=10, users=20, per_day=400)
    return build_slack(folder / "slack.zip", users=users, stream=stream)


def make_whatsapp(folder: Path, n: int) -> Path:
    from tests.builders.whatsapp import build_whatsapp

    lines = ((when(i), PEOPLE[i % 5], sentence(i)) for i in range(n))
    return build_whatsapp(folder / "WhatsApp Chat with Friends.txt", lines, platform="android",
                          order="mdy", clock=12)  # fmt: skip


def make_telegram(folder: Path, n: int) -> Path:
    from tests.builders.telegram import Chat, build_telegram, tg

    def msgs() -> Iterator[dict]:
        for i in range(n):
            msg = tg(PEOPLE[i % 6], 100 + i % 6, sentence(i), when=when(i))
            if i % 10 == 5:
                msg["reply_to_message_id"] = i - 4
            yield msg

    return build_telegram(folder / "result.json", [Chat(1, "Friends", messages=msgs())])


def make_discord(folder: Path, n: int) -> Path:
    from tests.builders.discord import author, build_discord, dc

    authors = [author(str(10 + k), name.lower(), name) for k, name in enumerate(PEOPLE)]

    def msgs() -> Iterator[dict]:
        for i in range(n):
            reply = str(1000 + i - 3) if i % 10 == 5 else None
            yield dc(str(1000 + i), authors[i % 8], sentence(i), reply_to=reply,
                     timestamp=when(i).isoformat())  # fmt: skip

    return build_discord(folder / "Friends - general [10].json", msgs())


def make_signal_desktop(folder: Path, n: int) -> Path:
    from tests.builders.signal_desktop import sig, stream_sigexport

    msgs = (sig(when(i), "Me" if i % 3 == 0 else PEOPLE[i % 4], sentence(i)) for i in range(n))
    return stream_sigexport(folder / "signal-export", "Friends", msgs)


def make_messenger(folder: Path, n: int) -> Path:
    from tests.builders.messenger import fb, stream_thread

    root = folder / "facebook" / "your_activity_across_facebook" / "messages" / "inbox"
    msgs = (fb(PEOPLE[i % 5] + " Müller", sentence(i) + " café") for i in range(n))
    stream_thread(root / "friends_1234567890", "Friends", [p + " Müller" for p in PEOPLE[:5]],
                  msgs, total=n, per_file=10_000)  # fmt: skip
    return folder / "facebook"


def make_imessage(folder: Path, n: int) -> Path:
    from tests.builders.imessage import build_chat_db, typedstream

    handles = [{"ROWID": k + 1, "id": f"+1555000{k:04d}"} for k in range(5)]
    ns = 1_000_000_000

    def rows() -> Iterator[dict]:
        for i in range(n):
            seconds = int((when(i) - dt.datetime(2001, 1, 1, tzinfo=dt.UTC)).total_seconds())
            row = {"ROWID": i + 1, "guid": f"msg-{i}", "date": seconds * ns,
                   "is_from_me": int(i % 3 == 0), "handle_id": 1 + i % 5}  # fmt: skip
            if i % 4 == 0:  # Ventura and later: the words only in attributedBody
                row["attributedBody"] = typedstream(sentence(i))
            else:
                row["text"] = sentence(i)
            yield row

    tables = {
        "handle": handles,
        "chat": [
            {
                "ROWID": 1,
                "guid": "iMessage;+;chat1",
                "chat_identifier": "chat1",
                "display_name": "Friends",
            }
        ],  # fmt: skip
        "message": rows(),
        "chat_message_join": ({"chat_id": 1, "message_id": i + 1} for i in range(n)),
        "chat_handle_join": [{"chat_id": 1, "handle_id": k + 1} for k in range(5)],
    }
    return build_chat_db(folder / "chat.db", tables)


MAKERS: dict[str, Callable[[Path, int], Path]] = {
    name: globals()[f"make_{name}"] for name in FORMATS
}


# --- Measuring ------------------------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(kind: str, path: str) -> None:
    """Run in the fresh process: parse, count, print "messages records seconds rss_before"."""
    from ingest.parsers.detect import load_parser
    from ingest.parsers.records import MessageRecord

    parse = load_parser(kind)
    before = _rss_kib("VmRSS")
    started = time.perf_counter()
    count = records = 0
    for record in parse(path):
        records += 1
        count += isinstance(record, MessageRecord)
    elapsed = time.perf_counter() - started
    print(count, records, f"{elapsed:.6f}", before, _rss_kib("VmHWM"))


def measure(kind: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{kind}: the parse failed\n{done.stderr}")
    count, records, seconds, before, peak = done.stdout.split()
    return {
        "messages": int(count),
        "records": int(records),
        "seconds": float(seconds),
        "rss_before_mib": int(before) / 1024,
        "peak_mib": int(peak) / 1024,
    }


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,400000", help="messages per export")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--keep", type=Path, help="write exports here and keep them")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise SystemExit(f"unknown formats: {', '.join(sorted(unknown))}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="joe-parser-bench-"))
    print(f"{'format':<15} {'messages':>9} {'export':>9} {'build s':>8} {'parse s':>8} "
          f"{'msg/s':>9} {'RSS base':>9} {'RSS peak':>9} {'added':>7}")  # fmt: skip
    total = time.perf_counter()
    try:
        for kind in formats:
            for n in sizes:
                folder = work / f"{kind}-{n}"
                folder.mkdir(parents=True, exist_ok=True)
                built = time.perf_counter()
                path = MAKERS[kind](folder, n)
                built = time.perf_counter() - built
                result = measure(kind, path)
                if result["messages"] != n:
                    raise SystemExit(f"{kind}: parsed {result['messages']} of {n} messages")
                rate = result["messages"] / result["seconds"]
                added = result["peak_mib"] - result["rss_before_mib"]
                print(f"{kind:<15} {n:>9,} {size_of(path) / 2**20:>7.1f}Mi {built:>8.1f} "
                      f"{result['seconds']:>8.2f} {rate:>9,.0f} {result['rss_before_mib']:>7.1f}Mi "
                      f"{result['peak_mib']:>7.1f}Mi {added:>5.1f}Mi", flush=True)  # fmt: skip
                if not args.keep:
                    shutil.rmtree(folder)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
