"""The README's flows: its first two commands, and the main job they run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _first_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block, "the README opens with a sh code block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = _first_commands()
    assert commands == ["scripts/run demo", "scripts/run test"]
    ci = (REPO / ".ci" / "run").read_text()
    ci_commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci_commands == ["exec bash scripts/run test"]


def test_the_main_job_runs_and_says_where_the_evidence_is(tmp_path: Path) -> None:
    env = dict(os.environ, VQUAL_STATE_DIR=str(tmp_path / "state"),
               VQUAL_EVIDENCE_DIR=str(tmp_path / "evidence"))
    done = subprocess.run(["bash", str(REPO / "scripts" / "run"), "demo"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    # On this machine the verdict is whatever is true; the command's exit code says it.
    assert done.returncode in (0, 1, 3, 4), done.stdout + done.stderr
    bundles = re.findall(r"evidence: (\S+)", done.stdout)
    reports = re.findall(r"report: +(\S+)", done.stdout)
    assert len(bundles) == 2 and len(reports) == 2, done.stdout
    assert all(Path(r).is_file() for r in reports)
    # The demo made a throwaway trust-admin and its pin beside the state directory, and says so.
    assert "demo: a throwaway trust-admin signed the trust store" in done.stdout
    assert "trust root: " in done.stdout and "legacy" not in done.stdout
    # Its closing hint works as printed, with nothing of this test's environment.
    hint = re.search(r"^Verify a bundle: (.*<bundle>)$", done.stdout, re.MULTILINE)
    assert hint, done.stdout
    bare = {k: v for k, v in os.environ.items() if not k.startswith("VQUAL_")}
    for bundle in bundles:
        verify = subprocess.run(["bash", "-c", hint.group(1).replace("<bundle>", bundle)
                                 + " --json"], env=bare, cwd=REPO,
                                capture_output=True, text=True, timeout=300, check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert json.loads(verify.stdout)["status"] == "valid"
    # Both runs belong to one change and the second chains to the first.
    assert Path(bundles[0]).parent == Path(bundles[1]).parent
