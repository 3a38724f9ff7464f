"""20 reviewers browsing 1,000 pushed bundles: the run summary page against the sealed
``report.html`` returned as a static file, by the same server in the same run.

1. N bundles (``serverlib.make_bundle``: ``--results`` passed results each) are pushed into a fresh server's store and database (the service's push:
   verified as ``vqual push`` is);
2. a real ``vqual serve`` (uvicorn, one worker, SQLite; ``--workers`` more) serves them; one
   reviewer account, ``--reviewers`` sessions logged in through the login form;
3. each reviewer thread asks for its share of the runs (a permutation: every run once, so
   each summary is rendered cold, as a first look is), for each run the summary
   ``/review/runs/<id>`` and then the sealed file ``/review/runs/<id>/report.html``
   (interleaved, so both are measured under the same load on a shared machine); then the
   same again (the summaries warm: rendered before, kept by the worker).

Prints p50/p95/max of each and the ratio of the summary's p95 to the static file's (goal: at
most 3). Run: ``.venv/bin/python bench/bench_server_review.py [--bundles 1000]
[--reviewers 20] [--results 10] [--workers 1]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from serverlib import legacy_trust, make_bundle, make_state, start_server, stop

from qualification.server import db
from qualification.server.config import ServerConfig
from qualification.server.files import pack
from qualification.server.service import EvidenceServer
from qualification.server.web.accounts import add_user

PASSWORD = "bench reviewer password"
SUMMARY, STATIC = "/review/runs/{}", "/review/runs/{}/report.html"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def populate(base: Path, bundles: int, results: int) -> list[str]:
    """Sealed bundles pushed into the server's store; returns their run ids."""
    state = base / "state"
    state.mkdir()
    signer = make_state(state)
    config = ServerConfig.from_state(state)
    db.upgrade(config.database_url)
    server = EvidenceServer(config)
    try:
        runs = []
        for i in range(bundles):
            path = make_bundle(base / "evidence", signer, i, results)
            out = server.push("bench", pack(path))
            runs.append(out.run_id)
            shutil.rmtree(path)
        add_user(server.engine, "rev", "Rita Reviewer", ["reviewer"], PASSWORD)
    finally:
        server.close()
    return runs


def serve(state: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    return start_server(state, "--workers", str(workers), "--insecure-cookies",
                        "--legacy-trust", "--session-idle-minutes", "120")


def login(url: str) -> requests.Session:
    """A reviewer's browser: its own session cookie, logged in through the form."""
    client = requests.Session()
    page = client.get(url + "/login", timeout=120)
    found = _CSRF.search(page.text)
    assert found, "no CSRF field on the login page"
    done = client.post(url + "/login", data={"user_id": "rev", "password": PASSWORD,
                                             "csrf_token": found.group(1),
                                             "next": "/review/runs"},
                       allow_redirects=False, timeout=120)
    assert done.status_code == 303, done.status_code
    return client


def browse(url: str, clients: list[requests.Session], shares: list[list[str]],
           paths: tuple[str, ...]) -> dict[str, list[float]]:
    """Seconds of each GET of each of ``paths`` (``{}`` the run id), every reviewer thread at
    once; a reviewer asks for each path of a run in turn, so all are measured under the same
    load (the machine is shared)."""
    times: dict[str, list[float]] = {p: [] for p in paths}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clients))

    def work(client: requests.Session, runs: list[str]) -> None:
        start.wait()
        mine: dict[str, list[float]] = {p: [] for p in paths}
        for run in runs:
            for path in paths:
                t0 = time.perf_counter()
                got = client.get(url + path.format(run), timeout=120)
                mine[path].append(time.perf_counter() - t0)
                if got.status_code != 200:
                    errors.append(f"{path.format(run)}: {got.status_code}")
        with lock:
            for path in paths:
                times[path].extend(mine[path])

    threads = [threading.Thread(target=work, args=(c, s)) for c, s in zip(clients, shares,
                                                                           strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, first: {errors[0]}")
    return times


def stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--results", type=int, default=10, help="check results per bundle")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    legacy_trust()  # the bench's own throwaway trust store
    base = Path(tempfile.mkdtemp(prefix="vqual-bench-review-"))
    try:
        t0 = time.perf_counter()
        runs = populate(base, args.bundles, args.results)
        pushed = time.perf_counter() - t0
        proc, url = serve(base / "state", args.workers)
        try:
            clients = [login(url) for _ in range(args.reviewers)]
            # One request of each kind first: imports and template compilation are paid once
            # per worker, not by whichever reviewer comes first.
            browse(url, clients[:1], [runs[:1]], (SUMMARY, STATIC))
            order = random.Random(16).sample(runs[1:], len(runs) - 1)
            shares = [order[i::args.reviewers] for i in range(args.reviewers)]
            first = browse(url, clients, shares, (SUMMARY, STATIC))  # a first look: cold
            again = browse(url, clients, shares, (SUMMARY, STATIC))  # rendered before: warm
        finally:
            stop(proc)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out = {"bundles": args.bundles, "reviewers": args.reviewers,
           "results_per_bundle": args.results, "workers": args.workers, "database": "sqlite",
           "populate_s": round(pushed, 1), "summary_cold": stats(first[SUMMARY]),
           "sealed_report_static": stats(first[STATIC] + again[STATIC]),
           "summary_warm": stats(again[SUMMARY])}
    out["ratio_p95_cold_to_static"] = round(out["summary_cold"]["p95_ms"]  # type: ignore[index]
                                           / out["sealed_report_static"]["p95_ms"], 2)  # type: ignore[index]
    out["ratio_p95_warm_to_static"] = round(out["summary_warm"]["p95_ms"]  # type: ignore[index]
                                           / out["sealed_report_static"]["p95_ms"], 2)  # type: ignore[index]
    print(json.dumps(out, indent=2))
    print(f"run summary p95 / static report.html p95: {out['ratio_p95_cold_to_static']} cold, "
          f"{out['ratio_p95_warm_to_static']} warm (goal: at most 3)")


if __name__ == "__main__":
    main()
