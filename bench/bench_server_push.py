"""N generated bundles pushed to a real ``vqual serve``, against ``vqual verify`` of the same
bundles, in the same run.

1. ``vqual verify``'s work (``verify_command``, what the command runs) over every bundle,
   in this process: the floor of what a push must cost, since the server verifies each push;
2. ``vqual push``'s work (the client: pack, POST) of every bundle to ``vqual serve`` (uvicorn,
   one worker; SQLite in the state directory, or ``--database-url``), sequentially and from
   ``--clients`` threads at once: throughput, and the ratio of push to verify per bundle;
3. the log afterwards: its size and a consistency check of the whole server;
4. the log's append (a leaf and the new checkpoint's root, what each push adds to the log) at
   10, 1,000 and 10,000 entries: with the stored subtree roots (``log_nodes``, what the server
   does) and recomputed from every leaf (what it did before revision 0004).

Run: ``.venv/bin/python bench/bench_server_push.py [--bundles 1000] [--results 10]
[--clients 4] [--database-url URL] [--log-only]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serverlib import BIN, legacy_trust, make_bundle, make_state, start_server, stop

from qualification.execution.verifying import verify_command
from qualification.server.client import Client


def token(state: Path, name: str, role: str, database_url: str | None) -> str:
    args = [str(BIN / "vqual"), "serve", "token", "create", "--name", name, "--role", role]
    if database_url:
        args += ["--database-url", database_url]
    done = subprocess.run(args, env=dict(os.environ, VQUAL_STATE_DIR=str(state)),
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def push_all(client: Client, bundles: list[Path], clients: int) -> float:
    """Seconds to push ``bundles`` from ``clients`` threads (each takes every clients-th)."""
    errors: list[BaseException] = []

    def work(mine: list[Path]) -> None:
        try:
            for bundle in mine:
                client.push(bundle)
        except BaseException as exc:  # noqa: BLE001 - reported after the threads end
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(bundles[i::clients],)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"push failed: {errors[0]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--results", type=int, default=10, help="check results per bundle")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--log-only", action="store_true", help="only the log append (4.)")
    args = parser.parse_args()
    legacy_trust()  # the bench's own throwaway trust store
    base = Path(tempfile.mkdtemp(prefix="vqual-bench-server-"))
    try:
        if not args.log_only:
            run(base, args)
        print(json.dumps(bench_log_append(base, args.database_url), indent=2))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(base: Path, args: argparse.Namespace) -> None:
    state = base / "state"
    state.mkdir()
    signer = make_state(state)
    t0 = time.perf_counter()
    bundles = [make_bundle(base / "evidence", signer, i, args.results)
               for i in range(args.bundles)]
    made = time.perf_counter() - t0

    t0 = time.perf_counter()
    for bundle in bundles:
        _text, payload, code = verify_command(bundle, state)
        assert code == 0, payload["problems"]
    verify_s = time.perf_counter() - t0

    half = len(bundles) // 2
    proc, url = start_server(
        state, *(["--database-url", args.database_url] if args.database_url else []))
    try:
        client = Client(url, token(state, "bench", "pusher", args.database_url))
        sequential_s = push_all(client, bundles[:half], 1)
        concurrent_s = push_all(client, bundles[half:], args.clients)
    finally:
        stop(proc)
    check = subprocess.run([str(BIN / "vqual"), "serve", "check", "--state-dir", str(state)]
                           + (["--database-url", args.database_url] if args.database_url else []),
                           capture_output=True, text=True, check=False)
    per_verify = verify_s / len(bundles)
    out = {
        "bundles": len(bundles), "results_per_bundle": args.results,
        "database": "postgresql" if args.database_url else "sqlite",
        "generate_s": round(made, 2),
        "verify_s": round(verify_s, 2), "verify_per_bundle_ms": round(per_verify * 1000, 2),
        "push_sequential_per_s": round(half / sequential_s, 1),
        "push_concurrent_per_s": round((len(bundles) - half) / concurrent_s, 1),
        "clients": args.clients,
        "push_sequential_over_verify": round(sequential_s / half / per_verify, 2),
        "push_concurrent_over_verify": round(concurrent_s / (len(bundles) - half) / per_verify, 2),
        "server_check": check.stdout.strip().splitlines()[0] if check.stdout else check.stderr,
    }
    print(json.dumps(out, indent=2))


def bench_log_append(base: Path, database_url: str | None, appends: int = 20) -> dict[str, object]:
    """Milliseconds per append (leaf, nodes and root, inside its transaction; the commit
    is left out, it costs both the same) at 10, 1,000 and 10,000 entries, stored subtree roots
    against a full recomputation from the leaves."""
    from qualification.server import db
    from qualification.server.merkle import DbTree

    out: dict[str, object] = {}
    for mode in ("stored", "recomputed"):
        url = database_url or db.sqlite_url(base / f"log-{mode}.db")
        db.upgrade(url)
        engine = db.make_engine(url)
        try:
            with db.write_tx(engine) as conn:
                conn.execute(db.log_nodes.delete())
                conn.execute(db.log_entries.delete())
            size = 0
            for target in (10, 1000, 10000):
                with db.write_tx(engine) as conn:  # fill up to the size measured at
                    tree = DbTree(conn)
                    while size < target:
                        size = tree.append_leaf(f"filler {size}".encode(), "bench", "t")
                spent = 0.0  # inside the transaction: the commit's fsync is the same for both
                for _ in range(appends):
                    with db.write_tx(engine) as conn:
                        t0 = time.perf_counter()
                        tree = DbTree(conn, verified=(mode == "recomputed"))
                        size = tree.append_leaf(f"leaf {size}".encode(), "bench", "t")
                        tree.get_root()
                        spent += time.perf_counter() - t0
                out[f"append_ms_at_{target}_{mode}"] = round(spent / appends * 1000, 2)
                size = target + appends
        finally:
            engine.dispose()
        if database_url:
            break  # one database given: the stored mode only (no second empty database)
    return out


if __name__ == "__main__":
    main()
