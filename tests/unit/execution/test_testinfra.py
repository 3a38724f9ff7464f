"""The testinfra runner: real pytest with real testinfra against local://, and the mapping
of inventory connection settings to testinfra's backends."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qualification.checks.testinfra import TESTINFRA, expand
from qualification.execution.testinfra import ConnectionProblem, host_spec, run_testinfra

SUITE = b'''import pytest


@pytest.fixture
def broken():
    raise RuntimeError("fixture could not reach the service")


@pytest.mark.urs("URS-HV-02")
def test_passes(host):
    assert host.file("/").is_directory


def test_assertion_fails(host):
    mode = 0o777
    assert host.file("/").mode == mode, "root directory mode differs"


def test_raises(host):
    raise OSError("the command could not run")


def test_fixture_errors(host, broken):
    pass


def test_skips(host):
    pytest.skip("not on this kind of host")


@pytest.mark.parametrize("path", ["/", "/nonexistent-vqual"])
def test_param(host, path):
    assert host.file(path).exists
'''

LOCAL = {"ansible_connection": "local"}


def _requests(tmp_path: Path, source: bytes = SUITE, module: str = "test_suite.py") -> list[dict]:
    (tmp_path / "test_suite.py").write_bytes(source)
    return [TESTINFRA.request(e.params).to_json() | {"test": e.name}
            for e in expand({"module": module}, tmp_path)]


def _by_test(requests: list[dict], answers: dict) -> dict[str, dict]:
    return {r["test"]: answers[r["key"]] for r in requests}


def test_each_function_is_answered_with_its_outcome_message_and_time(tmp_path: Path) -> None:
    requests = _requests(tmp_path)
    found = _by_test(requests, run_testinfra(requests, LOCAL, target="localhost"))
    outcomes = {name: obs["value"]["outcome"] for name, obs in found.items()}
    assert outcomes == {
        "test_passes": "passed",
        "test_assertion_fails": "failed",
        "test_raises": "error",
        "test_fixture_errors": "error",
        "test_skips": "skipped",
        "test_param": "failed",
    }
    assert found["test_passes"]["raw"] is None
    assert found["test_passes"]["method"] == "test_suite.py::test_passes[local]"
    assert "root directory mode differs" in found["test_assertion_fails"]["raw"]
    assert found["test_assertion_fails"]["raw"].startswith("AssertionError")
    assert found["test_raises"]["raw"] == "OSError: the command could not run"
    assert found["test_fixture_errors"]["raw"] == (
        "RuntimeError: fixture could not reach the service"
    )
    assert found["test_skips"]["raw"] == "not on this kind of host"
    # Parametrized beyond the host: one answer, as good as its worst node, naming it.
    param = found["test_param"]
    assert len(param["value"]["nodes"]) == 2
    assert "test_param[local-/nonexistent-vqual]" in param["raw"]
    assert all(obs["seconds"] >= 0 for obs in found.values())


def test_a_module_changed_since_loading_is_not_run(tmp_path: Path) -> None:
    requests = _requests(tmp_path)
    (tmp_path / "test_suite.py").write_bytes(SUITE + b"\n# changed\n")
    answers = run_testinfra(requests, LOCAL, target="localhost")
    assert all("changed since the spec was loaded" in a["error"] for a in answers.values())


def test_a_module_that_fails_to_import_is_an_error_naming_why(tmp_path: Path) -> None:
    source = b"import vqual_no_such_module\n\n\ndef test_x(host):\n    pass\n"
    requests = _requests(tmp_path, source)
    (answer,) = run_testinfra(requests, LOCAL, target="localhost").values()
    assert "pytest ran no such test" in answer["error"]
    assert "vqual_no_such_module" in answer["error"]


def test_the_site_configuration_of_the_folder_is_not_applied(tmp_path: Path) -> None:
    # A repository's ini (here: every warning an error) must not change the suite's outcome.
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -W error --strict-markers\n")
    source = b"import pytest\n\n@pytest.mark.site_only\ndef test_x(host):\n    pass\n"
    requests = _requests(tmp_path, source)
    (answer,) = run_testinfra(requests, LOCAL, target="localhost").values()
    assert answer["value"]["outcome"] == "passed"
    assert not list(tmp_path.glob("**/__pycache__"))


def test_local_connection_is_the_local_backend(tmp_path: Path) -> None:
    assert host_spec("localhost", LOCAL, tmp_path).hosts == "local://"


def test_ssh_settings_become_an_ssh_config(tmp_path: Path) -> None:
    spec = host_spec(
        "kvm1",
        {
            "ansible_host": "127.0.0.21", "ansible_port": 2222, "ansible_user": "root",
            "ansible_ssh_private_key_file": "/keys/id_ed25519",
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -oUserKnownHostsFile=/dev/null",
        },
        tmp_path,
    )
    assert spec.hosts == "ssh://kvm1"
    config = tmp_path / "ssh_config"
    assert spec.options == (f"--ssh-config={config}",)
    assert config.read_text().splitlines() == [
        "Host kvm1", "  HostName 127.0.0.21", "  User root", "  Port 2222",
        "  IdentityFile /keys/id_ed25519", "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null",
    ]
    assert config.stat().st_mode & 0o077 == 0


def test_paramiko_and_ansible_backends(tmp_path: Path) -> None:
    assert host_spec("h", {"ansible_connection": "paramiko"}, tmp_path).hosts == "paramiko://h"
    spec = host_spec("h", {"ansible_inventory_sources": ["/inv/hosts.yml"]}, tmp_path,
                     backend="ansible")
    assert spec == type(spec)("ansible://h", ("--ansible-inventory=/inv/hosts.yml",))


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"ansible_password": "s3cret-pw"}, "use keys only"),
        ({"ansible_ssh_common_args": "-J jump"}, "'-J' has no testinfra equivalent"),
        ({"ansible_connection": "winrm"}, "use backend: ansible"),
        ({"ansible_ssh_common_args": "-o 'User=x"}, "cannot be read"),
        ({"ansible_host": "h\n  ProxyCommand s3cret"}, "contains a line break"),
    ],
)
def test_unusable_settings_are_refused_without_the_secret(
    tmp_path: Path, connection: dict, message: str
) -> None:
    with pytest.raises(ConnectionProblem, match=message) as raised:
        host_spec("h", connection, tmp_path)
    assert "s3cret" not in str(raised.value)


def test_a_refused_connection_answers_every_request_with_an_error(tmp_path: Path) -> None:
    requests = _requests(tmp_path)
    answers = run_testinfra(requests, {"ansible_password": True}, target="h")
    assert len(answers) == len(requests)
    assert all(
        a["error"].startswith("testinfra: the inventory sets a password")
        for a in answers.values()
    )


def test_the_pinned_digest_is_the_files(tmp_path: Path) -> None:
    requests = _requests(tmp_path)
    assert requests[0]["args"]["sha256"] == hashlib.sha256(SUITE).hexdigest()


def test_two_modules_with_the_same_function_name_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "test_one.py").write_bytes(b"def test_x(host):\n    assert True\n")
    (tmp_path / "b" / "test_one.py").write_bytes(b"def test_x(host):\n    assert False, 'b'\n")
    requests = [
        TESTINFRA.request(e.params).to_json() | {"module": module}
        for module in ("a/test_one.py", "b/test_one.py")
        for e in expand({"module": module}, tmp_path)
    ]
    answers = run_testinfra(requests, LOCAL, target="localhost")
    outcomes = {r["module"]: answers[r["key"]]["value"]["outcome"] for r in requests}
    assert outcomes == {"a/test_one.py": "passed", "b/test_one.py": "failed"}


def test_ansibles_older_names_of_the_settings_count(tmp_path: Path) -> None:
    host_spec("h", {"ansible_ssh_host": "10.0.0.9", "ansible_ssh_user": "qa",
                    "ansible_private_key_file": "/k"}, tmp_path)
    assert (tmp_path / "ssh_config").read_text().splitlines() == [
        "Host h", "  HostName 10.0.0.9", "  User qa", "  IdentityFile /k"]


def test_a_conftest_beside_the_module_is_pinned_with_it(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("import pytest\n\n@pytest.fixture\ndef x():\n    return 1\n")
    requests = _requests(tmp_path, b"def test_x(host, x):\n    assert x == 1\n")
    assert requests[0]["args"]["conftest_sha256"]
    (answer,) = run_testinfra(requests, LOCAL, target="localhost").values()
    assert answer["value"]["outcome"] == "passed"
    (tmp_path / "conftest.py").write_text("import pytest\n\n@pytest.fixture\ndef x():\n    return 2\n")
    (answer,) = run_testinfra(requests, LOCAL, target="localhost").values()
    assert answer["error"].endswith("conftest.py changed since the spec was loaded")
    (tmp_path / "conftest.py").unlink()
    (answer,) = run_testinfra(requests, LOCAL, target="localhost").values()
    assert answer["error"].endswith("conftest.py is gone since the spec was loaded")
