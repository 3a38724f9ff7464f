"""Drive a vqual playbook through ansible-runner and report what it recorded.

``ansible_runner`` runs ``ansible-playbook`` as a subprocess; this module never imports
``ansible`` itself.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from qualification.errors import EXIT_BAD_INPUT, BadInputError
from qualification.execution.collection import collection_for_run, collections_path
from qualification.execution.context import RunContext, handoff_environment, write_handoff
from qualification.execution.inventory import VaultOptions
from qualification.execution.observing import verdict_counts

CALLBACK = "vqual.qualification.evidence"
#: Connection settings for many hosts (docs/performance.md): one SSH connection per host kept
#: open between tasks, and modules piped through it instead of copied first. The environment
#: wins: a site whose sudo needs a tty sets ANSIBLE_PIPELINING=False there.
CONNECTION_DEFAULTS = {
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
}
#: Forks per CPU when none is asked for: a worker mostly waits on its target's answer.
FORKS_PER_CPU = 4
MIN_FORKS, MAX_FORKS = 5, 50
#: Memory a worker needs at most (measured: docs/performance.md), to bound forks on small
#: controllers.
WORKER_MB = 100


@dataclass
class ProgressEvent:
    """Something the terminal or a pipeline may show while the run goes on."""

    kind: str  # "planned" | "target" | "unreachable" | "failed" | "bundle"
    target: str = ""
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class PlaybookRun:
    """What to run."""

    playbook: str
    inventory: Path
    extravars: dict[str, Any]
    key_file: Path
    evidence_dir: Path
    state_dir: Path
    initiator: str
    passphrase: bytes | None = None
    limit: str | None = None
    check_mode: bool = False
    keep_artifacts: Path | None = None
    progress: Callable[[ProgressEvent], None] | None = None
    #: Vault secrets for the inventory, as ``ansible-playbook`` options; Ansible's own
    #: sources (``ANSIBLE_VAULT_PASSWORD_FILE``, its configuration) apply as well.
    vault: VaultOptions = field(default_factory=VaultOptions)
    #: the run's inputs, loaded once before Ansible starts and handed to its plan action
    #: (None: the playbook's plan action loads them itself)
    context: RunContext | None = None
    #: Ansible's forks (None: $ANSIBLE_FORKS, else :func:`default_forks`)
    forks: int | None = None


@dataclass
class PlaybookOutcome:
    status: str
    rc: int
    plan_error: str | None = None
    plan_exit_code: int | None = None
    unreachable: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    planned: int = 0


def default_forks(cpus: int | None = None, available_mb: int | None = None) -> int:
    """Forks for this machine: :data:`FORKS_PER_CPU` per CPU within [5, 50], fewer where
    memory would not hold that many workers. Ansible starts no more workers than the play
    has hosts, so the inventory bounds it further."""
    cpus = cpus or os.cpu_count() or 1
    forks = max(MIN_FORKS, min(MAX_FORKS, FORKS_PER_CPU * cpus))
    memory = available_mb if available_mb is not None else _available_mb()
    if memory is not None:
        forks = min(forks, max(1, memory // WORKER_MB))
    return forks


def _available_mb() -> int | None:
    """MemAvailable of /proc/meminfo in MB, None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def choose_forks(requested: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """The forks of a run: ``--forks``, else ``$ANSIBLE_FORKS``, else :func:`default_forks`."""
    if requested is not None:
        if requested < 1:
            raise BadInputError(f"--forks {requested}: give at least 1")
        return requested
    text = environ.get("ANSIBLE_FORKS", "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise BadInputError(f"ANSIBLE_FORKS={text!r}: give a whole number of at least 1")
        return int(text)
    return default_forks()


def run_playbook(run: PlaybookRun) -> PlaybookOutcome:
    """Run one playbook of the collection with the evidence callback enabled."""
    root = collection_for_run()
    scratch = Path(tempfile.mkdtemp(prefix="vqual-run-"))
    outcome = PlaybookOutcome(status="unknown", rc=-1)
    try:
        options = (["--check"] if run.check_mode else []) + run.vault.argv()
        result = ansible_runner.run(
            private_data_dir=str(scratch),
            playbook=str(root / "playbooks" / run.playbook),
            inventory=str(run.inventory.resolve()),
            # The command judges the bundle itself (exit codes) and keeps it where it wrote
            # it: the playbook neither fails on the verdict nor copies it to the artifacts.
            extravars={"vqual_fail_job_on_fail": False, "vqual_artifacts_dir": "",
                       **run.extravars},
            envvars=_environment(run, root, scratch),
            limit=run.limit,
            forks=choose_forks(run.forks),
            cmdline=" ".join(shlex.quote(o) for o in options) or None,
            quiet=True,
            event_handler=_event_handler(run, outcome),
        )
        outcome.status = str(result.status)
        outcome.rc = int(result.rc if result.rc is not None else -1)
        return outcome
    finally:
        if run.keep_artifacts is not None:
            shutil.copytree(scratch / "artifacts", run.keep_artifacts, dirs_exist_ok=True)
        # The runner's artifacts hold task results; they stay out of reach unless asked for.
        shutil.rmtree(scratch, ignore_errors=True)


def _environment(run: PlaybookRun, root: Path, scratch: Path) -> dict[str, str]:
    """The playbook's environment: the collection, the evidence callback and its settings,
    the key's passphrase in a file of ``scratch`` (mode 0600), the handed-over context."""
    env = {
        **{k: v for k, v in CONNECTION_DEFAULTS.items() if k not in os.environ},
        "ANSIBLE_COLLECTIONS_PATH": collections_path(root, scratch),
        "ANSIBLE_CALLBACKS_ENABLED": CALLBACK,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "VQUAL_KEY_FILE": str(run.key_file),
        "VQUAL_EVIDENCE_DIR": str(run.evidence_dir),
        "VQUAL_STATE_DIR": str(run.state_dir),
        "VQUAL_INITIATOR": run.initiator,
        # ansible-runner starts ansible-playbook by name: this interpreter's bin first.
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    if run.passphrase is not None:
        pfile = scratch / "passphrase"
        fd = os.open(pfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(run.passphrase)
        env["VQUAL_KEY_PASSPHRASE_FILE"] = str(pfile)
    if run.context is not None:
        # Handed over, not loaded again: the plan action checks the file's digest.
        env.update(handoff_environment(*write_handoff(run.context, scratch)))
    return env


def _event_handler(
    run: PlaybookRun, outcome: PlaybookOutcome
) -> Callable[[Mapping[str, Any]], bool]:
    """ansible-runner's event handler: fills ``outcome`` and reports progress."""

    def on_event(event: Mapping[str, Any]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event")
        host = str(data.get("host") or "")
        res = data.get("res") or {}
        action = str(data.get("task_action") or "")
        if kind == "runner_on_ok" and "vqual_plan" in res:
            # the count beside the plan: the plan's own lists are JSON texts (to_packed)
            outcome.planned = int(res.get("vqual_planned") or 0)
            if run.progress:
                run.progress(ProgressEvent("planned", message=str(outcome.planned)))
        elif kind == "runner_on_ok" and "vqual_counts" in res and run.progress:
            run.progress(ProgressEvent("target", target=host, counts=dict(res["vqual_counts"])))
        elif kind == "runner_on_ok" and "vqual_results" in res and run.progress:
            results = res.get("vqual_results") or []
            if action.endswith("compare"):
                if results:
                    run.progress(ProgressEvent("target", target="(across hosts)",
                                               counts=verdict_counts(results)))
            else:
                run.progress(ProgressEvent("target", target=host, counts=verdict_counts(results)))
        elif kind == "runner_on_failed":
            msg = "the task failed" if res.get("_ansible_no_log") else str(res.get("msg", ""))
            if action.endswith(".plan") or action == "plan":
                outcome.plan_error = msg or "planning failed"
                outcome.plan_exit_code = int(res.get("vqual_exit_code", EXIT_BAD_INPUT))
            else:
                outcome.failed[host] = msg
                if run.progress:
                    run.progress(ProgressEvent("failed", target=host, message=msg))
        elif kind == "runner_on_unreachable":
            outcome.unreachable.append(host)
            if run.progress:
                run.progress(
                    ProgressEvent("unreachable", target=host, message=str(res.get("msg", "")))
                )
        return False  # events are not kept by the runner

    return on_event
