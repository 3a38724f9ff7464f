"""Host check types: parameters, the request each makes, and how each reads the probe's value.

The values fed to ``extract`` have the shape ``host_probe`` returns (see
``plugins/module_utils/host_observations.py``); ``test_host_observations.py`` checks that
shape against the real module on this machine.
"""

from __future__ import annotations

from typing import Any

import pytest

from qualification.checks import get_check, validate_params


def extract(check: str, value: Any, **params: Any) -> Any:
    assert validate_params(check, params) is None, validate_params(check, params)
    return get_check(check).extract(value, params)


def request(check: str, **params: Any) -> tuple[str, str, dict[str, Any]]:
    req = get_check(check).request(params)
    return req.probe, req.method, dict(req.args)


OS_RELEASE = {"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}


def test_os_release() -> None:
    assert request("os_release", field="VERSION_ID") == ("host", "os_release", {})
    assert extract("os_release", OS_RELEASE, field="VERSION_ID") == "12"
    assert extract("os_release", OS_RELEASE, field="VARIANT_ID") is None
    assert validate_params("os_release", {}) == "os_release: parameter field is required"


def test_requests_shared_by_tests_have_one_key() -> None:
    a = get_check("os_release").request({"field": "ID"})
    b = get_check("os_release").request({"field": "VERSION_ID"})
    c = get_check("cpu_model").request({})
    d = get_check("cpu_flags").request({"flags": ["vmx"]})
    assert a.key() == b.key()
    assert c.key() == d.key()


def test_kernel_release() -> None:
    assert (
        extract("kernel_release", {"release": "6.1.0-28-amd64", "machine": "x86_64"})
        == "6.1.0-28-amd64"
    )


def test_package_version() -> None:
    assert request("package_version", name="bash") == ("host", "packages", {"names": ["bash"]})
    assert extract("package_version", {"bash": "5.2.15-2+b8"}, name="bash") == "5.2.15-2+b8"
    assert extract("package_version", {"bash": None}, name="bash") is None


def test_packages_installed() -> None:
    names = ["qemu-utils", "chrony"]
    assert request("packages_installed", names=names)[2] == {"names": ["chrony", "qemu-utils"]}
    assert (
        extract("packages_installed", {"chrony": "4.3", "qemu-utils": "7.2"}, names=names) is True
    )
    assert extract("packages_installed", {"chrony": None, "qemu-utils": "7.2"}, names=names) == {
        "missing": ["chrony"]
    }
    assert validate_params("packages_installed", {"names": []}) is not None
    assert validate_params("packages_installed", {"names": "chrony"}) is not None


PROCS = [
    {"pid": 10, "name": "sshd", "cmdline": "/usr/sbin/sshd -D"},
    {"pid": 11, "name": "sshd", "cmdline": "sshd: root@pts/0"},
]


def test_process_running() -> None:
    assert request("process_running", name="sshd") == ("host", "processes", {"name": "sshd"})
    assert extract("process_running", PROCS, name="sshd") == 2
    assert extract("process_running", [], name="sshd") == 0
    assert extract("process_running", PROCS, name="sshd", result="running") is True
    assert validate_params("process_running", {}) is not None
    assert validate_params("process_running", {"cmdline": "("}) is not None


def test_service_active() -> None:
    value = {"active": True, "enabled": None, "state": "running", "manager": "process"}
    assert request("service_active", name="ssh", process="sshd")[2] == {
        "name": "ssh",
        "process": "sshd",
    }
    assert extract("service_active", value, name="ssh") is True
    assert extract("service_active", value, name="ssh", result="enabled") is None
    assert validate_params("service_active", {"name": "ssh", "result": "up"}) is not None


STAT = {
    "exists": True,
    "type": "file",
    "mode": "0640",
    "owner": "root",
    "group": "shadow",
    "uid": 0,
    "gid": 42,
    "size": 900,
    "sha256": "ab" * 32,
}


def test_file_checks() -> None:
    assert extract("file_exists", STAT, path="/etc/shadow") is True
    assert extract("file_exists", STAT, path="/etc/shadow", type="directory") is False
    assert extract("file_exists", {"exists": False}, path="/nope") is False
    assert extract("file_mode", STAT, path="/etc/shadow") == "0640"
    assert extract("file_mode", {"exists": False}, path="/etc/shadow") is None
    assert extract("file_owner", STAT, path="/etc/shadow") == "root:shadow"
    assert extract("file_checksum", STAT, path="/etc/shadow") == "ab" * 32
    assert request("file_checksum", path="/etc/x")[2] == {"path": "/etc/x", "checksum": True}
    assert request("file_mode", path="/etc/x")[2] == {"path": "/etc/x"}
    assert (
        validate_params("file_mode", {"path": "etc/x"})
        == "file_mode: parameter path must be an absolute path"
    )


def test_file_content_small_file_is_matched_on_the_controller() -> None:
    value = {"exists": True, "text": "a=1\n#b=2\nb=3\n", "matches": ["b=3"], "sha256": "x"}
    assert extract("file_content", value, path="/f", regex="^b=") == ["b=3"]
    assert extract("file_content", value, path="/f", contains="=", result="count") == 3
    assert extract("file_content", value, path="/f", regex="^c=", result="found") is False


def test_file_content_big_file_uses_the_probes_matching_lines() -> None:
    value = {"exists": True, "text": None, "matches": ["server a", "server b"], "sha256": "x"}
    assert extract("file_content", value, path="/f", regex="^server", result="count") == 2


def test_file_content_request_and_params() -> None:
    assert request("file_content", path="/f", contains="a.b")[2] == {
        "path": "/f",
        "pattern": r"a\.b",
    }
    assert extract("file_content", {"exists": False}, path="/f", regex="x") is None
    assert validate_params("file_content", {"path": "/f"}) is not None
    assert (
        validate_params("file_content", {"path": "/f", "regex": "a", "contains": "b"}) is not None
    )


def test_sysctl() -> None:
    assert request("sysctl", key="net.ipv4.ip_forward")[2] == {"key": "net.ipv4.ip_forward"}
    assert extract("sysctl", "0", key="net.ipv4.ip_forward") == "0"
    assert validate_params("sysctl", {"key": "../../etc/passwd"}) is not None


CPU = {
    "model": "AMD EPYC",
    "vendor": "AuthenticAMD",
    "logical": 2,
    "sockets": 1,
    "cores": 2,
    "flags": ["sse", "svm", "hypervisor"],
}


def test_cpu_checks() -> None:
    assert extract("cpu_model", CPU) == "AMD EPYC"
    assert extract("cpu_count", CPU) == 2
    assert extract("cpu_count", CPU, field="sockets") == 1
    assert extract("cpu_flags", CPU) == ["hypervisor", "sse", "svm"]
    assert extract("cpu_flags", CPU, flags=["vmx", "svm"]) == ["svm"]
    assert extract("cpu_flags", CPU, flags=["vmx"]) == []
    assert validate_params("cpu_count", {"field": "threads"}) is not None


def test_memory_total_mb() -> None:
    assert extract("memory_total_mb", {"total_kb": 24683656, "total_mb": 24105}) == 24105


def test_dmi() -> None:
    dmi = {"sys_vendor": "Dell Inc.", "bios_version": "1.13.2"}
    assert extract("dmi", dmi, field="sys_vendor") == "Dell Inc."
    assert extract("dmi", dmi, field="product_serial") is None
    assert validate_params("dmi", {"field": "../x"}) is not None


def test_mount() -> None:
    entry = {"target": "/tmp", "source": "tmpfs", "fstype": "tmpfs", "options": ["rw", "nosuid"]}
    assert extract("mount", entry, path="/tmp") == "tmpfs"
    assert extract("mount", entry, path="/tmp", field="options") == ["rw", "nosuid"]
    assert extract("mount", None, path="/tmp") is None


LISTEN = {
    "tcp": [
        {"address": "0.0.0.0", "port": 22},
        {"address": "::", "port": 22},
        {"address": "127.0.0.1", "port": 16514},
    ],
    "udp": [{"address": "0.0.0.0", "port": 323}],
}


def test_listening_ports() -> None:
    assert extract("listening_ports", LISTEN) == [22, 16514]
    assert extract("listening_ports", LISTEN, protocol="udp") == [323]
    assert extract("listening_ports", LISTEN, port=22) is True
    assert extract("listening_ports", LISTEN, port=16509) is False
    assert validate_params("listening_ports", {"port": 70000}) is not None
    assert validate_params("listening_ports", {"port": True}) is not None


def test_sshd_setting_asks_for_the_lower_case_key() -> None:
    assert request("sshd_setting", key="PermitRootLogin") == (
        "host",
        "sshd",
        {"key": "permitrootlogin"},
    )
    assert extract("sshd_setting", "no", key="permitrootlogin") == "no"


def test_time_sync() -> None:
    value = {"synchronised": True, "source": "C0A80001 (192.168.0.1)", "daemon": "chronyd"}
    assert extract("time_sync", value) is True
    assert extract("time_sync", value, field="daemon") == "chronyd"


def test_dns_resolves() -> None:
    assert extract("dns_resolves", ["::1", "127.0.0.1"], name="localhost") == ["127.0.0.1", "::1"]
    assert extract("dns_resolves", [], name="nope.invalid") == []


def test_users_and_groups() -> None:
    user = {
        "name": "libvirt-qemu",
        "uid": 64055,
        "gid": 103,
        "home": "/var/lib/libvirt",
        "shell": "/usr/sbin/nologin",
    }
    assert extract("user_exists", user, name="libvirt-qemu") is True
    assert extract("user_exists", None, name="nobody2") is False
    assert extract("user_shell", user, name="libvirt-qemu") == "/usr/sbin/nologin"
    assert extract("user_shell", None, name="x") is None
    group = {"name": "libvirt", "gid": 110, "members": ["vqual-svc", "alice"]}
    assert extract("group_exists", group, name="libvirt") is True
    assert extract("group_members", group, name="libvirt") == ["alice", "vqual-svc"]
    assert extract("group_members", None, name="libvirt") is None


def test_kernel_module_loaded() -> None:
    assert extract("kernel_module_loaded", {"loaded": True, "state": "builtin"}, name="kvm") is True
    assert (
        extract("kernel_module_loaded", {"loaded": False, "state": "absent"}, name="kvm") is False
    )


def test_libvirt_config_default_only_when_missing() -> None:
    assert request("libvirt_config", file="qemu.conf", key="vnc_listen")[2] == {
        "path": "/etc/libvirt/qemu.conf",
        "key": "vnc_listen",
    }
    assert (
        request("libvirt_config", file="/srv/hv1/libvirtd.conf", key="x")[2]["path"]
        == "/srv/hv1/libvirtd.conf"
    )
    found = {"found": True, "value": 1}
    missing = {"found": False, "value": None}
    assert extract("libvirt_config", found, file="libvirtd.conf", key="listen_tcp", default=0) == 1
    assert (
        extract("libvirt_config", missing, file="libvirtd.conf", key="listen_tcp", default=0) == 0
    )
    assert extract("libvirt_config", missing, file="libvirtd.conf", key="listen_tcp") is None
    assert validate_params("libvirt_config", {"file": "foo.conf", "key": "x"}) is not None


def test_command_output() -> None:
    value = {"rc": 0, "stdout": "Yes\n", "stderr": ""}
    assert request("command_output", argv=["aa-enabled"])[2] == {"argv": ["aa-enabled"]}
    assert extract("command_output", value, argv=["aa-enabled"]) == "Yes"
    assert extract("command_output", value, argv=["aa-enabled"], result="rc") == 0
    assert validate_params("command_output", {"argv": []}) is not None
    assert validate_params("command_output", {"argv": "ls -l"}) is not None


@pytest.mark.parametrize(
    ("check", "params", "message"),
    [
        ("file_mode", {"path": 1}, "file_mode: parameter path must be a string"),
        ("sysctl", {"key": ["a"]}, "sysctl: parameter key must be a string"),
        ("listening_ports", {"port": "22"}, "listening_ports: parameter port must be an integer"),
        (
            "packages_installed",
            {"names": "bash"},
            "packages_installed: parameter names must be a list",
        ),
        ("package_version", {"name": ""}, "package_version: parameter name must not be empty"),
    ],
)
def test_wrong_parameter_types_are_refused(
    check: str, params: dict[str, Any], message: str
) -> None:
    assert validate_params(check, params) == message


def test_every_host_check_type_is_documented() -> None:
    from pathlib import Path

    from qualification.checks.host import CHECKS

    docs = (Path(__file__).resolve().parents[3] / "docs" / "checks.md").read_text()
    missing = [check.name for check in CHECKS if f"`{check.name}`" not in docs]
    assert missing == []
