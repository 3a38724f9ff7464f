"""JUnit and the report rendered into a bundle before its seal, off the seal's critical path.

The seal waits for both renderings (format v2 seals them), and the seal runs in Ansible's
single main process, after the last host. A large run's JUnit is rendered by a separate
Python process reading the synced records, while this process renders the report: the two
overlap on two cores, and neither adds to the other. Both run with the cyclic garbage
collector paused: a rendering allocates millions of small objects, and in a process that holds
a whole play's state each full collection walks all of it (the report took 2.5x as long with
it on). The bytes are those of :func:`render_junit` and :func:`render_report` in one process
(VQ-91); if the worker fails, JUnit is rendered here instead.

Run as ``python -m qualification.execution.rendering BUNDLE OUT`` it is that worker.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qualification
from qualification.evidence.bundle import BundleWriter
from qualification.evidence.reader import read_bundle
from qualification.execution.gc_pause import gc_paused
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit

#: Below this many records both renderings take well under a second in this process, less
#: than starting a worker would; at or above it JUnit goes to the worker.
PARALLEL_FROM = 3000


def records_as_dicts(bundle: Path) -> list[dict[str, Any]]:
    """A bundle's records as the plain dicts the report renderers take."""
    return [
        {
            "v": r.v, "seq": r.seq, "prev": r.prev, "time": r.time, "change_id": r.change_id,
            "run_id": r.run_id, "actor": r.actor, "initiator": r.initiator, "kind": r.kind,
            "data": r.data,
        }
        for r in read_bundle(bundle).records
    ]


def _start_worker(bundle: Path, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    root = str(Path(qualification.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "qualification.execution.rendering", str(bundle), str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )


def _junit_from_worker(worker: subprocess.Popen[bytes], out: Path,
                       fallback: Callable[[], bytes]) -> bytes:
    _stdout, _stderr = worker.communicate()
    if worker.returncode == 0 and out.is_file():
        return out.read_bytes()
    return fallback()  # the same bytes, only later


def add_renderings(writer: BundleWriter, *, parallel_from: int = PARALLEL_FROM) -> None:
    """Render the JUnit and the report of the records written so far into the bundle, as
    every sealed run carries them (format v2 seals no placeholders); call before sealing.

    Args:
        parallel_from: records from which JUnit is rendered by a worker process meanwhile.
    """
    writer.sync()
    records = records_as_dicts(writer.path)
    if len(records) < parallel_from:
        with gc_paused():
            junit = render_junit(records).encode("utf-8")
            report = render_report(records).encode("utf-8")
    else:
        with tempfile.TemporaryDirectory(prefix="vqual-render-") as tmp:
            out = Path(tmp) / "junit.xml"
            worker = _start_worker(writer.path, out)
            try:
                with gc_paused():
                    report = render_report(records).encode("utf-8")
            except BaseException:
                worker.kill()
                worker.wait()
                raise
            with gc_paused():
                junit = _junit_from_worker(
                    worker, out, lambda: render_junit(records).encode("utf-8"))
    writer.add_file("junit.xml", junit)
    writer.add_file("report.html", report)


def _main(argv: list[str]) -> int:
    bundle, out = Path(argv[0]), Path(argv[1])
    gc.disable()  # a short-lived process: its garbage goes with it
    out.write_bytes(render_junit(records_as_dicts(bundle)).encode("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
