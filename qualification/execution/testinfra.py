"""Run a target's ``testinfra`` tests: pytest with testinfra's backends, on the controller.

The target is reached with the inventory's connection settings: ``ansible_connection``
``local`` gives testinfra's ``local`` backend; ``ssh`` (the default) and ``paramiko`` give
those backends, configured through a generated ssh_config from ``ansible_host``,
``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file`` and the ``-o`` options
of ``ansible_ssh_common_args``/``ansible_ssh_extra_args``; a spec test may ask for
``backend: ansible`` instead (testinfra's ansible backend with the run's inventory: testinfra
reads the inventory itself, and where it cannot map a connection it runs ansible per command).

pytest runs as a subprocess, once per target for all its modules, with
:mod:`qualification.execution.testinfra_report` loaded: so the suite's imports (testinfra,
and through its ansible backend ansible) stay out of this process, and a test that hangs or
crashes the interpreter costs that one run. A module is run only while it has the
digest the spec was loaded (and approved) with. Secrets never leave this module: a password in
the inventory is refused (the ssh backends cannot use one), and no command line or
connection setting goes into an observation.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.checks.testinfra import CONFTEST

#: The inventory variables the runner reads (the action plugin renders only these).
CONNECTION_VARS = (
    "ansible_connection",
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_inventory_sources",
    "inventory_hostname",
    # Ansible's older names of the same settings.
    "ansible_ssh_host",
    "ansible_ssh_port",
    "ansible_ssh_user",
    "ansible_private_key_file",
)
#: Each setting the ssh_config is made of, with its other name in Ansible.
_ALIASES = {
    "ansible_host": "ansible_ssh_host",
    "ansible_port": "ansible_ssh_port",
    "ansible_user": "ansible_ssh_user",
    "ansible_ssh_private_key_file": "ansible_private_key_file",
}
#: Present in the inventory, these mean password authentication (never read, only noticed).
PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
#: Seconds one module's run may take on one target.
TIMEOUT = 3600
_SAFE_ALIAS = re.compile(r"[^A-Za-z0-9._-]")
_WORST = ("error", "failed", "skipped", "passed")


class ConnectionProblem(ValueError):
    """The inventory's settings for a target cannot be turned into a testinfra backend."""


@dataclass(frozen=True)
class HostSpec:
    """testinfra's ``--hosts`` value and the files it needs (an ssh_config)."""

    hosts: str
    options: tuple[str, ...] = ()


def _ssh_options(args: str) -> list[str]:
    """``-o Key=Value`` pairs of ssh arguments as ssh_config lines; other flags refused."""
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise ConnectionProblem(f"ssh arguments cannot be read: {exc}") from None
    lines: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-o" and i + 1 < len(words):
            option, i = words[i + 1], i + 2
        elif word.startswith("-o"):
            option, i = word[2:], i + 1
        else:
            raise ConnectionProblem(
                f"ssh argument {word!r} has no testinfra equivalent (only -o options are used)"
            )
        key, _, value = option.replace("=", " ", 1).partition(" ")
        lines.append(f"  {key} {value.strip()}")
    return lines


def _backend(connection: Mapping[str, Any], wanted: str | None) -> str:
    if wanted:
        return wanted
    kind = str(connection.get("ansible_connection") or "ssh")
    if kind == "local":
        return "local"
    if kind in ("ssh", "smart"):
        return "ssh"
    if kind in ("paramiko", "paramiko_ssh"):
        return "paramiko"
    raise ConnectionProblem(
        f"ansible_connection {kind!r} has no testinfra backend here (use backend: ansible)"
    )


def host_spec(
    target: str, connection: Mapping[str, Any], workdir: Path, *, backend: str | None = None
) -> HostSpec:
    """How pytest reaches ``target`` (``--hosts`` and options); writes an ssh_config into
    ``workdir`` for the ssh backends.

    Raises:
        ConnectionProblem: the settings cannot be used (one line, no secret in it).
    """
    chosen = _backend(connection, backend)
    if chosen == "local":
        return HostSpec("local://")
    if chosen == "ansible":
        sources = connection.get("ansible_inventory_sources") or []
        sources = [sources] if isinstance(sources, str) else list(sources)
        if not sources:
            raise ConnectionProblem("backend ansible needs the run's inventory, none is known")
        name = str(connection.get("inventory_hostname") or target)
        return HostSpec(f"ansible://{name}", (f"--ansible-inventory={sources[0]}",))
    if any(connection.get(var) for var in PASSWORD_VARS):
        raise ConnectionProblem(
            "the inventory sets a password: testinfra's ssh backends use keys only "
            "(set ansible_ssh_private_key_file, or use backend: ansible)"
        )
    settings = {var: connection.get(var) or connection.get(old) for var, old in _ALIASES.items()}
    alias = _SAFE_ALIAS.sub("-", target) or "target"
    lines = [f"Host {alias}", f"  HostName {settings['ansible_host'] or target}"]
    for var, key in (("ansible_user", "User"), ("ansible_port", "Port"),
                     ("ansible_ssh_private_key_file", "IdentityFile")):
        if settings[var]:
            lines.append(f"  {key} {settings[var]}")
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if connection.get(var):
            lines.extend(_ssh_options(str(connection[var])))
    if any(ch in line for line in lines[1:] for ch in "\r\n\0"):
        # A line break in a value would add ssh options nobody wrote.
        raise ConnectionProblem("a connection setting contains a line break")
    config = workdir / "ssh_config"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config.chmod(0o600)
    return HostSpec(f"{chosen}://{alias}", (f"--ssh-config={config}",))


def _error_all(requests: Sequence[Mapping[str, Any]], reason: str) -> dict[str, dict[str, Any]]:
    return {str(r["key"]): {"error": reason} for r in requests}


def _tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(" ".join(line.split()) for line in kept)


def _observation(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One test function's observation; a function parametrized beyond the host ran as
    several nodes and is as good as its worst."""
    worst = min((str(e["outcome"]) for e in entries), key=_WORST.index)
    messages = [
        (f"{e['nodeid']}: {e['message']}" if len(entries) > 1 else str(e["message"]))
        for e in entries if e.get("message") and e["outcome"] != "passed"
    ]
    message = "\n".join(messages) or None
    return {
        "value": {"outcome": worst, "message": message, "nodes": [e["nodeid"] for e in entries]},
        "raw": message,
        "method": ", ".join(str(e["nodeid"]) for e in entries),
        "seconds": sum(float(e.get("seconds") or 0.0) for e in entries),
    }


def _pytest_command(nodes: Sequence[str], spec: HostSpec, report: Path) -> list[str]:
    rootdir = os.path.commonpath([node.split("::", 1)[0] for node in nodes])
    rootdir = rootdir if Path(rootdir).is_dir() else str(Path(rootdir).parent)
    return [
        sys.executable, "-m", "pytest",
        # The suite's own ini would be found in its parent folders (a repository's addopts,
        # -Werror); the suite is run as it is written, with no configuration but ours.
        "-c", os.devnull, "--rootdir", rootdir,
        # Only a conftest.py beside a module is pinned with the spec (a data file of it); one
        # in a folder above would run unpinned code, so pytest does not look above.
        "--confcutdir", rootdir,
        "-q", "-p", "no:cacheprovider", "-p", "qualification.execution.testinfra_report",
        f"--hosts={spec.hosts}", *spec.options, f"--vqual-report={report}", *nodes,
    ]


def _changed(path: Path, digest: str | None) -> str | None:
    """Why ``path`` is not as the spec was loaded with it (digest None: it did not exist)."""
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        return None if digest is None else f"{path} is gone since the spec was loaded"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if digest is None:
        return f"{path} appeared since the spec was loaded"
    if hashlib.sha256(source).hexdigest() != digest:
        return f"{path} changed since the spec was loaded"
    return None


def _module_problem(args: Mapping[str, Any]) -> str | None:
    """Why the module (or the conftest.py beside it) cannot run as the spec was loaded with
    it, or None."""
    path = Path(str(args["path"]))
    problem = _changed(path, args["sha256"]) if "sha256" in args else None
    return problem or _changed(path.parent / CONFTEST, args.get("conftest_sha256"))


def _unchanged(
    requests: Sequence[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], dict[str, dict[str, Any]]]:
    """The requests whose module is as the spec was loaded with it, and an ``error``
    answer for the others."""
    problems: dict[str, str | None] = {}
    runnable: list[Mapping[str, Any]] = []
    refused: dict[str, dict[str, Any]] = {}
    for request in requests:
        path = str(request["args"]["path"])
        if path not in problems:
            problems[path] = _module_problem(request["args"])
        problem = problems[path]
        if problem is None:
            runnable.append(request)
        else:
            refused[str(request["key"])] = {"error": problem}
    return runnable, refused


def _run_group(
    requests: Sequence[Mapping[str, Any]], spec: HostSpec, workdir: Path
) -> dict[str, dict[str, Any]]:
    """One pytest run of the requested tests of every module (one interpreter, one
    connection); each request answered."""
    runnable, answers = _unchanged(requests)
    if not runnable:
        return answers
    nodes = list(dict.fromkeys(f"{r['args']['path']}::{r['args']['test']}" for r in runnable))
    report = workdir / "report.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ next to the site's suite
    try:
        done = subprocess.run(
            _pytest_command(nodes, spec, report), cwd=workdir, env=env,
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        return answers | _error_all(runnable, f"pytest did not finish within {TIMEOUT} s")
    entries: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if report.is_file():
        for line in report.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            entries.setdefault((str(entry["path"]), str(entry["name"])), []).append(entry)
    why = f"pytest ran no such test (exit {done.returncode}): {_tail(done.stdout + done.stderr)}"
    for r in runnable:
        found = entries.get((str(r["args"]["path"]), str(r["args"]["test"])))
        answers[str(r["key"])] = _observation(found) if found else {"error": why}
    return answers


def run_testinfra(
    requests: Sequence[Mapping[str, Any]], connection: Mapping[str, Any], *, target: str
) -> dict[str, dict[str, Any]]:
    """Answer a target's ``testinfra`` requests, by request key: one pytest run for all
    modules of the same backend and sudo setting (and distinct file names). Never raises for a test or a connection
    that fails: the requests get an ``error`` observation saying why."""
    groups: dict[tuple[str | None, bool, int], list[Mapping[str, Any]]] = {}
    # pytest's default import mode (the one a site's suite is written for) cannot load two
    # modules of the same file name in one run: the second of a name goes to a further run.
    slots: dict[str, int] = {}
    taken: dict[str, int] = {}
    for request in requests:
        args = request.get("args") or {}
        path = str(args.get("path"))
        if path not in slots:
            slots[path] = taken[Path(path).name] = taken.get(Path(path).name, -1) + 1
        key = (args.get("backend"), bool(args.get("sudo")), slots[path])
        groups.setdefault(key, []).append(request)
    observations: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vqual-testinfra-") as tmp:
        for index, ((backend, sudo, _), group) in enumerate(groups.items()):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            try:
                spec = host_spec(target, connection, workdir, backend=backend)
            except ConnectionProblem as exc:
                observations.update(_error_all(group, f"testinfra: {exc}"))
                continue
            if sudo:
                spec = HostSpec(spec.hosts, (*spec.options, "--sudo"))
            observations.update(_run_group(group, spec, workdir))
    return observations
