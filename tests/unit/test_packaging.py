"""The vqual wheel is the product and nothing else: no lab, no tests, no benchmarks."""

from __future__ import annotations

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
    assert not any("lab" in Path(n).parts or n.endswith((".go", ".patch")) for n in names)
    assert not any(n.startswith(("tests/", "bench/", "vqual_lab/")) for n in names)
