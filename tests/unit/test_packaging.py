"""The vqual wheel is the product and nothing else: no lab, no tests, no benchmarks; its core
imports without the optional extras."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_package_and_no_lab_tests_or_benchmarks(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = tmp_path.glob("vqual-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/", 1)[0] for n in names if not n.startswith("vqual-")}
    assert packages == {"qualification"}, packages
    assert "qualification/py.typed" in names
    assert "qualification/reports/templates/report.html.j2" in names
    # vqual selftest checks a stored time-stamp token at the site (ST-OQ-13).
    assert {"qualification/selftest/data/tsa-token.der",
            "qualification/selftest/data/tsa-root.pem"} <= set(names)
    # The evidence server's schema migrations travel with it.
    assert "qualification/server/migrations/versions/v0002_log.py" in names
    assert not any("lab" in Path(n).parts or n.endswith((".go", ".patch")) for n in names)
    assert not any(n.startswith(("tests/", "bench/", "vqual_lab/")) for n in names)


#: Run in a fresh interpreter: the optional dependencies cannot be imported (as in a venv
#: installed without extras), then every module of the package is imported.
_WITHOUT_EXTRAS = """
import importlib, json, pkgutil, sys
from qualification.errors import OPTIONAL_MODULES

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OPTIONAL_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
import qualification
failed = {}
for info in pkgutil.walk_packages(qualification.__path__, "qualification."):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:
        failed[info.name] = exc.name
print(json.dumps(failed))
"""


def test_the_core_imports_without_the_optional_extras() -> None:
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS], capture_output=True,
                          text=True, timeout=300, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout)
    from qualification.errors import OPTIONAL_MODULES

    # Only the platform adapters need their vendor library, and the evidence server its stack
    # (its client side, push and pull, does not), and only an optional one.
    assert all(name.startswith(("qualification.platforms.", "qualification.server."))
               for name in failed), failed
    assert {module.split(".")[0] for module in failed.values()} <= set(OPTIONAL_MODULES)
    for kept in ("qualification.cli", "qualification.execution.qualify",
                 "qualification.evidence.verify", "qualification.reports.html",
                 "qualification.checks", "qualification.selftest",
                 "qualification.server.client", "qualification.server.files"):
        assert kept not in failed
