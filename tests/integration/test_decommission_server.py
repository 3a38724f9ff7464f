"""Decommissioning asks the evidence server (docs/conversion.md, "Decommissioning"; VQ-86): with
a server configured, ``vqual decommission`` refuses before any change unless the server holds
every bundle of the target, by its seal and not voided. A real ``vqual serve`` (SQLite), a real
qualification run of the target (on this machine), ``vqual push``; no lab.

The target is a libvirt test-driver domain; the runs here stop at the next refusal (no backup
store declared), which the server check comes before, so nothing is ever removed. The
checks on their own (held, not held, voided, another seal, the server unreachable) are
exercised with the real server through ``decommission_block``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification.baseline.decommission import decommission_block, held_on_server
from qualification.errors import BadInputError, EvidenceInvalidError, PlatformError
from qualification.evidence.verify import verify_bundle
from qualification.server.client import HeldRuns
from qualification.signing import TrustStore
from tests.conftest import run_vqual
from tests.server_testlib import Served, free_port, serve, token_file

TARGET = "app-vm"
SPEC = {
    "apiVersion": "vqual/v1", "kind": "Protocol",
    "metadata": {"name": "decom-server", "title": "A small protocol", "version": "1.0"},
    "requirements": ["URS-SEC-01"],
    "tests": [{"id": "IQ-T-001", "title": "passwd exists", "protocol": "IQ",
               "requirements": ["URS-SEC-01"], "applies_to": ["linux_host", "clone"],
               "risk": ["low", "medium", "high"], "scope": ["master", "clone"],
               "check": "file_exists",
               "params": {"path": "/etc/passwd"}, "expect": {"op": "equals", "value": True},
               "acceptance": "as expected"}],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Keys (executor, log), a qualification run of the target, a running server with a
    pusher's and a reader's token."""
    base = tmp_path_factory.mktemp("decom-server")
    state = base / "state"
    for name, role in (("CI Pipeline", "executor"), ("Evidence log", "log")):
        done = run_vqual("keys", "create", "--name", name, "--role", role, "--service",
                         "--throwaway", state_dir=state)
        assert done.returncode == 0, done.stderr
    inventory = base / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {TARGET: {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}", "vqual_target_kinds": ["linux_host", "clone"],
        "vqual_risk": "high", "vqual_libvirt_uri": "test:///default",
        "vqual_libvirt_domain": "test"}}}}))
    spec = base / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    evidence = base / "evidence"
    done = run_vqual("qualify", "--evidence-dir", str(evidence), "-i", str(inventory), "-s",
                     str(spec), "-c", "CHG0008600", "--limit", TARGET, "--json", state_dir=state)
    assert done.returncode == 0, done.stdout + done.stderr
    served = serve(state)
    try:
        yield {"state": state, "inventory": inventory, "evidence": evidence, "served": served,
               "bundle": Path(json.loads(done.stdout)["bundle"]),
               "pusher": token_file(state, "ci-pipeline", "pusher"),
               "reader": token_file(state, "qa-reader", "reader")}
    finally:
        served.stop()


@dataclass
class Answering:
    """A stand-in evidence server that answers every seal with ``answer``."""

    url: str
    answer: dict[str, Any]

    def held(self, seal: str) -> dict[str, Any]:
        return self.answer


def decommission(site: dict[str, Any], *args: str, **env: str) -> tuple[int, str]:
    done = run_vqual("decommission", "-i", str(site["inventory"]), "--limit", TARGET,
                     "-c", "CHG0008601", "--evidence-dir", str(site["evidence"]), *args,
                     state_dir=site["state"], **env)
    return done.returncode, done.stdout + done.stderr


def test_decommission_is_refused_until_the_server_holds_the_targets_bundle(
    site: dict[str, Any]
) -> None:
    served: Served = site["served"]
    server = ["--server", served.url, "--token-file", str(site["reader"])]
    code, out = decommission(site, *server)
    assert code == 2 and "Traceback" not in out, out
    assert f"is not held by the evidence server {served.url}; push it first" in out
    assert site["bundle"].name in out

    pushed = run_vqual("push", str(site["bundle"]), "--server", served.url,
                       state_dir=site["state"], VQUAL_SERVER_TOKEN_FILE=str(site["pusher"]))
    assert pushed.returncode == 0, pushed.stderr
    # Held now: the next refusal (no backup store declared) is the one after the server's.
    code, out = decommission(site, *server)
    assert code == 2 and "no backup store to observe its backups in" in out, out
    # The same through $VQUAL_SERVER_URL and $VQUAL_SERVER_TOKEN_FILE.
    code, out = decommission(site, VQUAL_SERVER_URL=served.url,
                             VQUAL_SERVER_TOKEN_FILE=str(site["reader"]))
    assert code == 2 and "no backup store to observe its backups in" in out, out
    assert site["reader"].read_text().strip() not in out


def test_bad_server_settings_are_refused_in_one_line_before_the_run(
    site: dict[str, Any]
) -> None:
    code, out = decommission(site, "--server", site["served"].url, VQUAL_SERVER_TOKEN="")
    assert code == 2 and out.strip() == (
        "vqual: no server token: set VQUAL_SERVER_TOKEN or use --token-file"), out
    code, out = decommission(site, "--server", "ftp://example.org",
                             "--token-file", str(site["reader"]))
    assert code == 2 and "is not an http(s) URL" in out, out
    unreachable = f"http://127.0.0.1:{free_port()}"
    code, out = decommission(site, "--server", unreachable, "--token-file", str(site["reader"]))
    assert code == 4 and f"cannot reach the server at {unreachable}" in out, out
    assert "Traceback" not in out
    code, out = decommission(site, "--no-server", VQUAL_SERVER_URL=unreachable)
    assert code == 2 and "no backup store" in out, out  # no server asked


def test_the_checks_with_the_real_server(site: dict[str, Any]) -> None:
    trust = TrustStore.load(site["state"] / "trust.yaml")
    held = HeldRuns(site["served"].url, site["reader"])
    seal = verify_bundle(site["bundle"], trust).seal_digest
    assert seal is not None
    info = held.held(seal)
    assert info is not None and info["seal"] == seal and info["voided"] is None
    assert held.held("0" * 64) is None
    hostvars = {TARGET: {"vqual_backup_store": str(site["state"] / "none")}}
    with pytest.raises(BadInputError, match="0 backup"):  # past the server's check
        decommission_block([TARGET], hostvars, site["evidence"], trust, held)

    # The server's own answer, altered as a server holding a voided run, or another run
    # under the seal asked for, would answer (a stand-in: voiding takes an approver's key).
    bundles = [{"bundle": str(site["bundle"]), "seal": seal}]
    voided = Answering(held.url, {**info, "voided": {"time": "t", "by": "Anna Approver"}})
    with pytest.raises(EvidenceInvalidError, match="is voided on the evidence server"):
        held_on_server(TARGET, bundles, voided)
    with pytest.raises(EvidenceInvalidError, match="answers with seal"):
        held_on_server(TARGET, [{"bundle": "b", "seal": "1" * 64}], Answering(held.url, info))
    with pytest.raises(PlatformError, match="cannot reach"):
        held_on_server(TARGET, bundles, HeldRuns(f"http://127.0.0.1:{free_port()}",
                                                 site["reader"]))
