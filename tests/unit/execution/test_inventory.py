"""The inventory reader renders host variables as ansible-playbook does (real Ansible, local).

Vault values are made by ``ansible-vault encrypt_string`` in each test; nothing connects to
any host (the reader's action runs on the controller).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from qualification.errors import EXIT_BAD_INPUT, BadInputError
from qualification.execution.inventory import RenderFailure, VaultOptions, read_hostvars
from tests.conftest import VENV_BIN, run_vqual, vqual_env
from tests.vault_testlib import encrypt_string, password_file

SECRET = "Vaulted-S3cret-4711"
NOTE = "from-the-environment-0815"


def _inventory(tmp_path: Path, password: Path, extra: str = "") -> Path:
    """Two hosts: a vaulted password, an environment lookup, templates over other variables
    (host, group and magic ones), and a variable whose lookup always fails."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n"
        "  vars:\n"
        "    vqual_site: \"site-{{ vqual_region }}\"\n"
        "  hosts:\n"
        "    vc:\n"
        "      ansible_connection: local\n"
        "      ansible_host: 127.0.0.41\n"
        "      vqual_region: north\n"
        "      vqual_vsphere_username: svc\n"
        "      vqual_vsphere_url: \"https://{{ vqual_vsphere_username }}@{{ ansible_host }}/sdk\"\n"
        "      vqual_note: \"{{ lookup('ansible.builtin.env', 'VQUAL_TEST_NOTE') }}\"\n"
        "      vqual_login: \"{{ vqual_vsphere_username }}:{{ vqual_vsphere_password }}\"\n"
        "      broken: \"{{ lookup('ansible.builtin.file', '/nonexistent/vqual-test') }}\"\n"
        + encrypt_string("vqual_vsphere_password", SECRET, password, indent=6)
        + extra
        + "    kvm:\n"
        "      ansible_connection: local\n"
        "      vqual_region: south\n"
        "      vqual_libvirt_uri: \"qemu+ssh://root@{{ inventory_hostname }}/system\"\n"
    )
    return inventory


@pytest.fixture
def password(tmp_path: Path) -> Path:
    return password_file(tmp_path)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VQUAL_TEST_NOTE", NOTE)
    # The only vault sources are the ones a test gives.
    for name in ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST", "ANSIBLE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_vault_environment_lookup_and_templates_are_rendered(tmp_path: Path, password: Path) -> None:
    inventory = _inventory(tmp_path, password)
    found = read_hostvars(inventory, patterns=["vqual_.*"],
                          vault=VaultOptions(password_files=(password,)))
    assert found == {
        "vc": {
            "vqual_site": "site-north",  # a group variable rendered in each host's context
            "vqual_region": "north",
            "vqual_vsphere_username": "svc",
            "vqual_vsphere_url": "https://svc@127.0.0.41/sdk",
            "vqual_note": NOTE,
            "vqual_vsphere_password": SECRET,
            "vqual_login": f"svc:{SECRET}",  # a template over a vaulted value
        },
        "kvm": {
            "vqual_site": "site-south",
            "vqual_region": "south",
            "vqual_libvirt_uri": "qemu+ssh://root@kvm/system",
        },
    }


def test_names_and_hosts_select_what_is_rendered(tmp_path: Path, password: Path) -> None:
    """Only what is asked for is rendered: the failing ``broken`` and the vaulted password
    are not touched, so neither a vault password nor a working lookup is needed."""
    inventory = _inventory(tmp_path, password)
    found = read_hostvars(inventory, names=["vqual_vsphere_url", "ansible_host"], hosts=["vc"])
    assert found == {"vc": {"vqual_vsphere_url": "https://svc@127.0.0.41/sdk",
                            "ansible_host": "127.0.0.41"}}
    assert read_hostvars(inventory, names=["vqual_libvirt_uri"]) == {
        "vc": {}, "kvm": {"vqual_libvirt_uri": "qemu+ssh://root@kvm/system"}}


def test_ansible_vault_sources_apply(
    tmp_path: Path, password: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _inventory(tmp_path, password)
    by_id = read_hostvars(inventory, names=["vqual_vsphere_password"], hosts=["vc"],
                          vault=VaultOptions(ids=(f"site@{password}",)))
    assert by_id["vc"]["vqual_vsphere_password"] == SECRET
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password))
    from_env = read_hostvars(inventory, names=["vqual_vsphere_password"], hosts=["vc"])
    assert from_env["vc"]["vqual_vsphere_password"] == SECRET


def test_a_missing_vault_password_is_one_line_of_bad_input(tmp_path: Path, password: Path) -> None:
    inventory = _inventory(tmp_path, password)
    with pytest.raises(BadInputError) as caught:
        read_hostvars(inventory, names=["vqual_vsphere_password"])
    error = caught.value
    assert error.exit_code == EXIT_BAD_INPUT
    assert error.one_line() == (
        f"{inventory}: host vc: variable vqual_vsphere_password needs a vault-encrypted value "
        "and no vault password was given: give --vault-password-file or --vault-id, or set "
        "ANSIBLE_VAULT_PASSWORD_FILE")


def test_a_wrong_vault_password_says_it_cannot_decrypt(tmp_path: Path, password: Path) -> None:
    inventory = _inventory(tmp_path, password)
    wrong = password_file(tmp_path, "not-the-password", name="wrong-pass")
    with pytest.raises(BadInputError) as caught:
        read_hostvars(inventory, names=["vqual_login"], vault=VaultOptions(password_files=(wrong,)))
    line = caught.value.one_line()
    assert line.startswith(f"{inventory}: host vc: variable vqual_login needs a vault-encrypted "
                           "value that the vault password given cannot decrypt (")
    assert "\n" not in line


def test_failures_can_be_collected_instead(tmp_path: Path, password: Path) -> None:
    inventory = _inventory(tmp_path, password)
    failures: list[RenderFailure] = []
    found = read_hostvars(inventory, names=["broken", "vqual_region"], failures=failures)
    assert found == {"vc": {"vqual_region": "north"}, "kvm": {"vqual_region": "south"}}
    [failure] = failures
    assert (failure.host, failure.variable, failure.kind) == ("vc", "broken", "template")
    assert "/nonexistent/vqual-test" in failure.reason  # Ansible's own reason
    with pytest.raises(BadInputError, match=r": host vc: variable broken cannot be rendered: "):
        read_hostvars(inventory, names=["broken"])


def test_a_reason_never_quotes_a_value_of_the_host(tmp_path: Path, password: Path) -> None:
    """A file lookup names its argument in its error; that argument is the vaulted password
    here. Ansible's own message quotes it (checked first, so this test can fail); the
    reader's reason does not."""
    leaky = "      vqual_leaky: \"{{ lookup('ansible.builtin.file', vqual_vsphere_password) }}\"\n"
    inventory = _inventory(tmp_path, password, extra=leaky)
    plain = subprocess.run(
        [str(VENV_BIN / "ansible"), "vc", "-i", str(inventory), "-m", "ansible.builtin.debug",
         "-a", "var=vqual_leaky", "--vault-password-file", str(password)],
        capture_output=True, text=True, timeout=120, check=False, env=vqual_env(tmp_path),
    )
    assert SECRET in plain.stdout + plain.stderr
    with pytest.raises(BadInputError) as caught:
        read_hostvars(inventory, names=["vqual_leaky"], vault=VaultOptions(password_files=(password,)))
    line = caught.value.one_line()
    assert "vqual_leaky cannot be rendered" in line and "<redacted>" in line
    assert SECRET not in line


def test_no_rendered_value_reaches_a_file_or_ansible_output(
    tmp_path: Path, password: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Ansible's log on and its temporary directories in the test's directory, reading
    leaves the secret in no file. The same log catches a value Ansible prints (the old way
    of reading: ``ansible -m debug``), so the check can fail."""
    inventory = _inventory(tmp_path, password)
    log = tmp_path / "ansible.log"
    for name, value in (("ANSIBLE_LOG_PATH", str(log)), ("TMPDIR", str(tmp_path / "tmp")),
                        ("ANSIBLE_LOCAL_TEMP", str(tmp_path / "ansible-local")),
                        ("ANSIBLE_VERBOSITY", "4")):
        monkeypatch.setenv(name, value)
    (tmp_path / "tmp").mkdir()
    found = read_hostvars(inventory, patterns=["vqual_.*"],
                          vault=VaultOptions(password_files=(password,)))
    assert found["vc"]["vqual_vsphere_password"] == SECRET
    assert log.is_file() and "vqual_vsphere_password" in log.read_text()  # names, logged
    holding = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert holding == []

    printed_log = tmp_path / "printed.log"
    subprocess.run(
        [str(VENV_BIN / "ansible"), "vc", "-i", str(inventory), "-m", "ansible.builtin.debug",
         "-a", "var=vqual_vsphere_password", "--vault-password-file", str(password)],
        capture_output=True, text=True, timeout=120, check=False,
        env=vqual_env(tmp_path, ANSIBLE_LOG_PATH=str(printed_log)),
    )
    assert SECRET in printed_log.read_text()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "no such file or directory"),
        ("malformed", "cannot read the inventory: Failed to parse inventory with"),
        ("unknown_host", "not in the inventory: nope"),
        ("bad_pattern", "variable pattern '('"),
    ],
)
def test_unreadable_inventory_is_bad_input_naming_it(
    case: str, expected: str, tmp_path: Path, password: Path
) -> None:
    inventory = _inventory(tmp_path, password)
    kwargs: dict[str, object] = {"names": ["vqual_region"]}
    if case == "missing":
        inventory = tmp_path / "no-such-inventory.yml"
    elif case == "malformed":
        inventory.write_text("all:\n  hosts:\n    vc: [\n")
    elif case == "unknown_host":
        kwargs["hosts"] = ["vc", "nope"]
    else:
        kwargs["patterns"] = ["("]
    with pytest.raises(BadInputError) as caught:
        read_hostvars(inventory, **kwargs)  # type: ignore[arg-type]
    line = caught.value.one_line()
    assert expected in line and "\n" not in line
    if case != "bad_pattern":
        assert line.startswith(f"{inventory}: ")


def test_a_whole_vaulted_host_vars_file_needs_the_password(tmp_path: Path, password: Path) -> None:
    inventory = tmp_path / "inv"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n      ansible_connection: local\n")
    secret_file = inventory / "host_vars" / "h1.yml"
    secret_file.write_text(f"vqual_token: {SECRET}\n")
    done = subprocess.run([str(VENV_BIN / "ansible-vault"), "encrypt", "--vault-password-file",
                           str(password), str(secret_file)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=vqual_env(tmp_path))
    assert done.returncode == 0 and SECRET not in secret_file.read_text(), done.stderr
    found = read_hostvars(inventory, patterns=["vqual_.*"],
                          vault=VaultOptions(password_files=(password,)))
    assert found == {"h1": {"vqual_token": SECRET}}
    with pytest.raises(BadInputError, match="no vault password was given: give "
                       "--vault-password-file"):
        read_hostvars(inventory, patterns=["vqual_.*"])


def test_vault_options_are_ansible_options_with_absolute_paths(tmp_path: Path) -> None:
    pw = password_file(tmp_path)
    relative = Path(os.path.relpath(pw))
    options = VaultOptions(password_files=(relative,), ids=(f"prod@{relative}", "dev@vault-client"))
    assert options.argv() == ["--vault-password-file", str(pw), "--vault-id", f"prod@{pw}",
                              "--vault-id", "dev@vault-client"]
    with pytest.raises(BadInputError, match="cannot prompt"):
        VaultOptions(ids=("prod@prompt",))


# -- through the commands ----------------------------------------------------------------


def test_cleanup_reads_its_targets_through_the_reader(
    tmp_path: Path, password: Path, executor_state: Path
) -> None:
    """``vqual cleanup``: a libvirt URI from an environment lookup is cleaned; a vSphere
    endpoint whose password is vaulted is reported in one line without the vault password
    (exit 4), and is connected to with it (refused: nothing listens), never printing it."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    hv:\n      vqual_libvirt_uri: \"{{ lookup('ansible.builtin.env', 'VQUAL_TEST_URI') }}\"\n"
        "    vc:\n      vqual_vsphere_host: 127.0.0.1\n      vqual_vsphere_port: 9\n"
        "      vqual_vsphere_username: svc\n"
        + encrypt_string("vqual_vsphere_password", SECRET, password, indent=6)
    )
    run = "20260101T000000Z-abc123"
    args = ("cleanup", run, "-i", str(inventory), "--json")
    without = run_vqual(*args, state_dir=executor_state, VQUAL_TEST_URI="test:///default")
    assert without.returncode == 4, without.stderr
    result = json.loads(without.stdout)
    targets = {t["endpoint"]: t for t in result["targets"]}
    assert targets["test:///default"]["errors"] == []
    assert targets["127.0.0.1"]["errors"] == [(
        "inventory host vc: variable vqual_vsphere_password needs a vault-encrypted value and "
        "no vault password was given: give --vault-password-file or --vault-id, or set "
        "ANSIBLE_VAULT_PASSWORD_FILE")]
    with_password = run_vqual(*args, "--vault-password-file", str(password),
                              state_dir=executor_state, VQUAL_TEST_URI="test:///default")
    assert with_password.returncode == 4, with_password.stderr
    [vc] = [t for t in json.loads(with_password.stdout)["targets"] if t["hosts"] == ["vc"]]
    assert vc["errors"] and "vault" not in vc["errors"][0]  # decrypted, then refused
    for done in (without, with_password):
        assert SECRET not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
