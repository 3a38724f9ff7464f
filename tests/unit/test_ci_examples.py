"""The CI examples of docs/ci.md: the GitLab pipeline is valid against GitLab's CI schema (as
vendored by check-jsonschema), and both pipelines run `vqual patch --plan`, then `--bind`, with
options `vqual` has, and keep the bundle and its JUnit. There is no Jenkins here: the
Jenkinsfile is checked for the commands it runs."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
GITLAB = EXAMPLES / "gitlab-ci.yml"
JENKINS = EXAMPLES / "Jenkinsfile"
BIN = Path(sys.executable).parent


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True, text=True, check=False, timeout=120,
    )


def test_the_gitlab_pipeline_is_valid_against_gitlabs_ci_schema() -> None:
    done = _check_jsonschema(GITLAB)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_jsonschema_refuses_a_pipeline_gitlab_would_refuse(tmp_path: Path) -> None:
    # The schema check can fail: a job whose `when` GitLab does not know is refused.
    pipeline = yaml.safe_load(GITLAB.read_text())
    pipeline["patch"]["when"] = "after_approval"
    bad = tmp_path / "gitlab-ci.yml"
    bad.write_text(yaml.safe_dump(pipeline))
    assert _check_jsonschema(bad).returncode != 0


@cache
def _options(command: str) -> frozenset[str]:
    """The options ``vqual <command> --help`` lists."""
    done = subprocess.run([str(BIN / "vqual"), command, "--help"], capture_output=True,
                          text=True, check=True, timeout=60)
    return frozenset(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", done.stdout))


def _vqual_commands(text: str) -> list[tuple[str, list[str]]]:
    """Each ``vqual <command> ...`` a pipeline runs: the command and the options it passes."""
    found = []
    for match in re.finditer(r"\bvqual (patch|verify)\b([^\n|>;']*)", text):
        found.append((match.group(1), re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", match.group(2))))
    return found


@pytest.mark.parametrize("path", [GITLAB, JENKINS], ids=["gitlab", "jenkins"])
def test_pipeline_runs_vqual_with_options_it_has(path: Path) -> None:
    commands = _vqual_commands(path.read_text())
    assert commands
    for command, options in commands:
        unknown = set(options) - _options(command)
        assert not unknown, f"{path.name}: vqual {command} has no {sorted(unknown)}"


#: How each pipeline keeps the summary and the whole evidence directory.
ARCHIVED = {
    GITLAB: "paths: [outcome.json, evidence/]",
    JENKINS: "archiveArtifacts artifacts: 'outcome.json, evidence/**'",
}


@pytest.mark.parametrize("path", [GITLAB, JENKINS], ids=["gitlab", "jenkins"])
def test_pipeline_plans_then_binds_and_keeps_bundle_and_junit(path: Path) -> None:
    text = path.read_text()
    patches = [options for command, options in _vqual_commands(text) if command == "patch"]
    planned = [i for i, options in enumerate(patches) if "--plan" in options]
    bound = [i for i, options in enumerate(patches) if "--bind" in options]
    assert planned and bound and max(planned) < min(bound), "plan first, then run bound to it"
    assert all({"-i", "--change"} <= set(options) for options in patches)
    assert "PLAN_DIGEST" in text and '["digest"]' in text  # the digest --plan --json printed
    # <evidence dir>/<change id>/<run id>/junit.xml (tests/integration/test_junit_schema.py)
    assert "evidence/*/*/junit.xml" in text
    assert ARCHIVED[path] in text
    assert any(command == "verify" for command, _ in _vqual_commands(text))


def test_the_gitlab_pipeline_keeps_artefacts_of_a_failed_patch_and_publishes_junit() -> None:
    patch = yaml.safe_load(GITLAB.read_text())["patch"]
    assert patch["when"] == "manual"  # the approval between plan and run
    artifacts = patch["artifacts"]
    assert artifacts["when"] == "always"
    assert "evidence/" in artifacts["paths"]
    assert artifacts["reports"]["junit"] == "evidence/*/*/junit.xml"
