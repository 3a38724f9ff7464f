"""The host probe's observation functions, for real: on this machine and on files made here."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

from tests.unit.plugins.module_utils.guest_root_testlib import make_root

REPO = Path(__file__).resolve().parents[4]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"


def _load() -> ModuleType:
    # The file ships to targets inside the module payload; here it is loaded from the repo.
    path = COLLECTION / "plugins" / "module_utils" / "host_observations.py"
    spec = importlib.util.spec_from_file_location("vqual_host_observations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ho = _load()


def observer(**kwargs: Any) -> Any:
    return ho.HostObserver(**kwargs)


def ok(observation: dict[str, Any]) -> Any:
    assert observation["error"] is None, observation["error"]
    assert observation["not_executed"] is None
    return observation["value"]


def script(directory: Path, name: str, body: str) -> str:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# --- batch behaviour -------------------------------------------------------------------------


def test_observe_all_answers_each_key_once_and_isolates_failures() -> None:
    results = observer().observe_all(
        [
            {"key": "k1", "method": "kernel", "args": {}},
            {"key": "k1", "method": "kernel", "args": {}},
            {"key": "bad", "method": "no_such_method", "args": {}},
            {"key": "file", "method": "file", "args": {"path": "relative/path"}},
            {"key": "mem", "method": "memory", "args": {}},
        ]
    )
    assert sorted(results) == ["bad", "file", "k1", "mem"]
    assert results["bad"]["error"] == "unknown host probe method 'no_such_method'"
    assert results["file"]["error"] == "path must be absolute, got 'relative/path'"
    assert ok(results["k1"])["release"] == os.uname().release
    assert ok(results["mem"])["total_mb"] > 0
    bad_regex = observer().observe_all(
        [{"key": "p", "method": "processes", "args": {"cmdline": "("}}]
    )
    assert bad_regex["p"]["error"].startswith("processes failed: ")
    for observation in results.values():
        assert set(observation) == {"value", "raw", "method", "error", "not_executed", "seconds"}
        assert isinstance(observation["seconds"], float) and observation["seconds"] >= 0


# --- os release, kernel, packages ------------------------------------------------------------


def test_os_release_parses_quotes(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text(
        'ID=debian\nVERSION_ID="12"\nPRETTY_NAME=\'Debian 12\'\n# comment\nNAME="A \\"B\\""\n'
    )
    observation = observer(paths={"os_release": str(release)}).observe("os_release", {})
    assert ok(observation) == {
        "ID": "debian",
        "VERSION_ID": "12",
        "PRETTY_NAME": "Debian 12",
        "NAME": 'A "B"',
    }
    assert observation["raw"].startswith("ID=debian")
    assert observation["method"] == f"host.file {release}"


def test_os_release_of_this_machine_matches_platform() -> None:
    import platform

    value = ok(observer().observe("os_release", {}))
    assert value["ID"] == platform.freedesktop_os_release()["ID"]


def test_os_release_missing_is_an_error(tmp_path: Path) -> None:
    observation = observer(paths={"os_release": str(tmp_path / "none")}).observe("os_release", {})
    assert observation["error"] is not None and "no os-release file" in observation["error"]


DPKG_STATUS = """Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b8

Package: oldpkg
Status: deinstall ok config-files
Version: 1.0-1

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u9
Description: GNU C Library
 Version: not-this-one

Package: broken
Status: install reinstreq half-installed
Version: 0.1
"""


def test_packages_from_a_dpkg_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS)
    observation = observer(paths={"dpkg_status": str(status)}).observe(
        "packages", {"names": ["bash", "oldpkg", "libc6", "broken", "absent"]}
    )
    assert ok(observation) == {
        "bash": "5.2.15-2+b8",
        "oldpkg": None,
        "libc6": "2.36-9+deb12u9",
        "broken": None,
        "absent": None,
    }
    assert "absent (not installed)" in observation["raw"]


def test_package_database_is_read_once_per_call(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS)
    probe = observer(paths={"dpkg_status": str(status)})
    first = ok(probe.observe("packages", {"names": ["bash"]}))
    status.write_text(DPKG_STATUS.replace("5.2.15-2+b8", "9.9"))
    # The same call reuses what it read; a new call reads the file again.
    assert ok(probe.observe("packages", {"names": ["bash"]})) == first
    assert ok(
        observer(paths={"dpkg_status": str(status)}).observe("packages", {"names": ["bash"]})
    ) == {"bash": "9.9"}


def test_packages_on_this_machine_agree_with_dpkg_query() -> None:
    if not Path("/var/lib/dpkg/status").exists():
        pytest.skip("not a dpkg system")
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "bash"], capture_output=True, text=True, check=True
    )
    assert ok(observer().observe("packages", {"names": ["bash"]})) == {"bash": out.stdout}


# --- processes and services -----------------------------------------------------------------


#: A duration no other process on a shared runner uses (another checkout's suite may run the
#: same test at the same moment): it names this session's sleeper.
SLEEP_ARG = f"3141.{os.getpid()}"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", SLEEP_ARG])
    # Ready once the kernel shows the exec'd command line (not the forked parent's).
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10  # exec takes milliseconds; 10 s covers a loaded runner
    while SLEEP_ARG.encode() not in cmdline.read_bytes():
        assert time.monotonic() < deadline, "the sleeper did not start"
        time.sleep(0.005)
    yield process
    process.kill()
    process.wait()


def test_processes_by_name_and_cmdline(sleeper: subprocess.Popen[bytes]) -> None:
    found = ok(observer().observe("processes", {"cmdline": "sleep " + re.escape(SLEEP_ARG)}))
    assert [p["pid"] for p in found] == [sleeper.pid]
    by_name = ok(observer().observe("processes", {"name": "sleep", "cmdline": SLEEP_ARG}))
    assert [p["pid"] for p in by_name] == [sleeper.pid]
    assert ok(observer().observe("processes", {"name": "no-such-daemon-xyz"})) == []


def test_service_without_systemd_falls_back_to_a_process_check(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    probe = observer(paths={"systemd_run": str(tmp_path / "no-systemd")})
    running = probe.observe("service", {"name": "sleeper", "process": "sleep"})
    assert ok(running) == {
        "active": True,
        "enabled": None,
        "state": "running",
        "manager": "process",
    }
    assert "no systemd running: process check for sleep" in running["method"]
    stopped = probe.observe("service", {"name": "no-such-daemon-xyz"})
    assert ok(stopped)["active"] is False


# --- files ----------------------------------------------------------------------------------


def test_file_stat_and_checksum(tmp_path: Path) -> None:
    path = tmp_path / "conf"
    path.write_bytes(b"listen_tcp = 0\n")
    path.chmod(0o640)
    observation = observer().observe("file", {"path": str(path), "checksum": True})
    value = ok(observation)
    assert value["exists"] is True and value["type"] == "file"
    assert value["mode"] == "0640"
    assert value["uid"] == os.getuid()
    assert value["sha256"] == hashlib.sha256(b"listen_tcp = 0\n").hexdigest()
    assert value["sha256"] in observation["raw"]


def test_file_types_and_missing(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path)
    assert ok(observer().observe("file", {"path": str(tmp_path)}))["type"] == "directory"
    link = ok(observer().observe("file", {"path": str(tmp_path / "link")}))
    assert link["type"] == "link" and link["target"] == str(tmp_path)
    assert ok(observer().observe("file", {"path": str(tmp_path / "none")})) == {"exists": False}
    assert ok(observer().observe("file", {"path": "/dev/null"}))["type"] == "char"


def test_checksum_of_a_directory_is_an_error(tmp_path: Path) -> None:
    observation = observer().observe("file", {"path": str(tmp_path), "checksum": True})
    assert observation["error"] == f"cannot checksum {tmp_path}: it is a directory"


def test_file_content_small_file_returns_text(tmp_path: Path) -> None:
    path = tmp_path / "chrony.conf"
    path.write_text(
        "pool 2.debian.pool.ntp.org iburst\nserver 10.0.0.1\n#server 10.0.0.9\nkey s3cr3t\n"
    )
    observation = observer().observe("file_content", {"path": str(path), "pattern": r"^\s*server"})
    value = ok(observation)
    assert value["text"].splitlines()[1] == "server 10.0.0.1"
    assert value["matches"] == ["server 10.0.0.1"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert value["sha256"] == digest
    # Evidence gets the digest and the deciding lines, not the rest of the file.
    assert observation["raw"] == (
        f"sha256 {digest}, {path.stat().st_size} bytes; 1 line(s) matching /^\\s*server/:\n"
        "server 10.0.0.1"
    )
    assert "s3cr3t" not in observation["raw"]


def test_file_content_big_file_returns_digest_and_matching_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    lines = [f"line {i} filler filler filler" for i in range(5000)] + ["MARKER found"]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > ho.TEXT_LIMIT
    observation = observer().observe("file_content", {"path": str(path), "pattern": "MARKER"})
    value = ok(observation)
    assert value["text"] is None
    assert value["matches"] == ["MARKER found"]
    assert value["size"] == path.stat().st_size
    assert value["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(observation["raw"]) < 1000


def test_file_content_of_proc_and_sys_files_works() -> None:
    # /proc files report size 0; they are still read.
    value = ok(
        observer().observe("file_content", {"path": "/proc/sys/kernel/ostype", "pattern": "Linux"})
    )
    assert value["matches"] == ["Linux"]


# --- kernel parameters, CPU, memory, DMI ----------------------------------------------------


def test_sysctl_reads_proc_sys() -> None:
    assert ok(observer().observe("sysctl", {"key": "kernel.ostype"})) == "Linux"
    ports = ok(observer().observe("sysctl", {"key": "net.ipv4.ip_local_port_range"}))
    assert ports == " ".join(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert "\t" not in ports
    missing = observer().observe("sysctl", {"key": "kernel.no_such_key"})
    assert ok(missing) is None and "does not exist" in missing["method"]
    assert observer().observe("sysctl", {"key": "../../etc/passwd"})["error"] is not None


def test_cpu_of_this_machine() -> None:
    value = ok(observer().observe("cpu", {}))
    assert value["logical"] == os.cpu_count()
    assert value["model"]
    assert value["flags"] == sorted(set(value["flags"]))


def test_cpu_sockets_from_a_cpuinfo_file(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    blocks = [
        f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon Gold\n"
        f"physical id\t: {i // 2}\ncpu cores\t: 2\nflags\t\t: fpu vmx sse\n"
        for i in range(4)
    ]
    (proc / "cpuinfo").write_text("\n".join(blocks) + "\n")
    value = ok(observer(paths={"proc": str(proc)}).observe("cpu", {}))
    assert value == {
        "model": "Intel Xeon Gold",
        "vendor": "GenuineIntel",
        "logical": 4,
        "sockets": 2,
        "cores": 2,
        "flags": ["fpu", "sse", "vmx"],
    }


def test_memory_matches_the_kernels_page_count() -> None:
    value = ok(observer().observe("memory", {}))
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert value["total_kb"] == total // 1024
    assert value["total_mb"] == total // 1024 // 1024


def test_dmi_from_a_directory(tmp_path: Path) -> None:
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "sys_vendor").write_text("Dell Inc.\n")
    (dmi / "bios_version").write_text("1.13.2\n")
    (dmi / "uevent").write_text("MODALIAS=dmi:x\n")
    value = ok(observer(paths={"dmi": str(dmi)}).observe("dmi", {}))
    assert value == {"sys_vendor": "Dell Inc.", "bios_version": "1.13.2"}


def test_dmi_missing_is_an_error(tmp_path: Path) -> None:
    observation = observer(paths={"dmi": str(tmp_path / "none")}).observe("dmi", {})
    assert observation["error"] is not None and "no DMI data" in observation["error"]


# --- mounts and sockets ---------------------------------------------------------------------


def test_mounts_of_this_machine() -> None:
    root = ok(observer().observe("mount", {"path": "/"}))
    assert root["target"] == "/" and root["fstype"] and isinstance(root["options"], list)
    assert ok(observer().observe("mount", {"path": "/proc"}))["fstype"] == "proc"
    assert ok(observer().observe("mount", {"path": "/etc"})) is None  # not a mount point


def test_listening_sockets_are_seen() -> None:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("127.0.0.1", 0))
        value = ok(observer().observe("listening", {}))
        assert {"address": "127.0.0.1", "port": tcp.getsockname()[1]} in value["tcp"]
        assert {"address": "127.0.0.1", "port": udp.getsockname()[1]} in value["udp"]
    finally:
        tcp.close()
        udp.close()


def test_proc_net_parsing_decodes_ipv4_and_ipv6() -> None:
    header = "  sl  local_address rem_address   st ...\n"
    v4 = (
        header
        + "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n"
        "   1: 0100007F:D9E4 0100007F:0016 01 00000000:00000000 00:00000000 00000000 0 0 2\n"
    )
    assert ho.parse_proc_net(v4, "tcp", socket.AF_INET) == [{"address": "127.0.0.1", "port": 22}]
    v6 = (
        header
        + "   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A x\n"
    )
    assert ho.parse_proc_net(v6, "tcp", socket.AF_INET6) == [{"address": "::1", "port": 22}]


# --- sshd -T --------------------------------------------------------------------------------

SSHD_T = """port 22
permitrootlogin without-password
passwordauthentication no
hostkey /etc/ssh/ssh_host_rsa_key
hostkey /etc/ssh/ssh_host_ed25519_key
ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com
"""


def test_sshd_t_is_run_once_for_many_keys(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    sshd = script(
        tmp_path,
        "sshd",
        f'[ "$1" = "-T" ] || exit 9\necho run >> {counter}\ncat <<"EOF"\n{SSHD_T}EOF\n',
    )
    probe = observer(executables={"sshd": sshd})
    results = probe.observe_all(
        [
            {"key": "a", "method": "sshd", "args": {"key": "permitrootlogin"}},
            {"key": "b", "method": "sshd", "args": {"key": "PasswordAuthentication"}},
            {"key": "c", "method": "sshd", "args": {"key": "hostkey"}},
            {"key": "d", "method": "sshd", "args": {"key": "x11forwarding"}},
        ]
    )
    assert ok(results["a"]) == "without-password"
    assert results["a"]["raw"] == "permitrootlogin without-password"
    assert results["a"]["method"] == f"host.sshd {sshd} -T"
    assert ok(results["b"]) == "no"
    assert ok(results["c"]) == ["/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"]
    assert ok(results["d"]) is None
    assert counter.read_text() == "run\n"


def test_sshd_failure_is_an_error_for_each_key_with_stderr(tmp_path: Path) -> None:
    sshd = script(
        tmp_path, "sshd", 'echo "Missing privilege separation directory: /run/sshd" >&2\nexit 255\n'
    )
    results = observer(executables={"sshd": sshd}).observe_all(
        [
            {"key": "a", "method": "sshd", "args": {"key": "permitrootlogin"}},
            {"key": "b", "method": "sshd", "args": {"key": "port"}},
        ]
    )
    for observation in results.values():
        assert (
            observation["error"]
            == f"{sshd} -T failed (rc 255): Missing privilege separation directory: /run/sshd"
        )


def test_sshd_absent_says_so() -> None:
    observation = observer(executables={"sshd": None}).observe("sshd", {"key": "port"})
    assert observation["error"] is not None and observation["error"].startswith(
        "sshd is not installed"
    )


# --- time -----------------------------------------------------------------------------------

TRACKING = """Reference ID    : 0A14000B (10.20.0.11)
Stratum         : 3
Ref time (UTC)  : Thu Nov 26 03:00:00 2026
System time     : 0.000001 seconds fast of NTP time
Leap status     : {leap}
"""


@pytest.mark.parametrize(("leap", "synchronised"), [("Normal", True), ("Not synchronised", False)])
def test_time_sync_from_chronyc(tmp_path: Path, leap: str, synchronised: bool) -> None:
    chronyc = script(
        tmp_path,
        "chronyc",
        f'[ "$2" = "tracking" ] || exit 9\ncat <<"EOF"\n{TRACKING.format(leap=leap)}EOF\n',
    )
    observation = observer(executables={"chronyc": chronyc}).observe("time_sync", {})
    assert ok(observation) == {
        "synchronised": synchronised,
        "source": "0A14000B (10.20.0.11)",
        "daemon": "chronyd",
    }
    assert observation["method"] == "host.time_sync chronyc -n tracking"


def test_time_sync_without_a_daemon_reports_the_kernel_clock_state(tmp_path: Path) -> None:
    probe = observer(
        executables={"chronyc": None, "timedatectl": None, "ntpq": None},
        paths={"systemd_run": str(tmp_path / "none")},
    )
    observation = probe.observe("time_sync", {})
    value = ok(observation)
    assert value["daemon"] is None and isinstance(value["synchronised"], bool)
    assert "adjtimex" in observation["method"]
    assert "no time daemon answered" in observation["raw"]


# --- names, users, groups, modules ------------------------------------------------------------


def test_dns_resolves_localhost_and_not_an_invalid_name() -> None:
    assert "127.0.0.1" in ok(observer().observe("dns", {"name": "localhost"}))
    missing = observer().observe("dns", {"name": "no-such-host.invalid"})
    assert ok(missing) == [] and "getaddrinfo(no-such-host.invalid)" in missing["raw"]


def test_users_and_groups_of_this_machine() -> None:
    import grp
    import pwd

    me = pwd.getpwuid(os.getuid())
    user = ok(observer().observe("user", {"name": me.pw_name}))
    assert user == {
        "name": me.pw_name,
        "uid": me.pw_uid,
        "gid": me.pw_gid,
        "home": me.pw_dir,
        "shell": me.pw_shell,
    }
    assert ok(observer().observe("user", {"name": "no-such-user-xyz"})) is None
    group = ok(observer().observe("group", {"name": grp.getgrgid(me.pw_gid).gr_name}))
    assert me.pw_name in group["members"]  # members by primary group count too
    assert ok(observer().observe("group", {"name": "no-such-group-xyz"})) is None


def test_kernel_modules_loaded_builtin_absent(tmp_path: Path) -> None:
    proc, sysmod = tmp_path / "proc", tmp_path / "module"
    proc.mkdir()
    (proc / "modules").write_text("kvm_amd 200704 0 - Live 0x0\nkvm 1400832 1 kvm_amd, Live 0x0\n")
    (sysmod / "vhost_net" / "parameters").mkdir(parents=True)
    (sysmod / "usb_storage").mkdir()
    (sysmod / "usb_storage" / "initstate").write_text("live\n")
    probe = observer(paths={"proc": str(proc), "sys_module": str(sysmod)})
    assert ok(probe.observe("kernel_module", {"name": "kvm"})) == {
        "loaded": True,
        "state": "loaded",
    }
    assert ok(probe.observe("kernel_module", {"name": "vhost-net"})) == {
        "loaded": True,
        "state": "builtin",
    }
    # A /sys/module entry with initstate but absent from /proc/modules was unloaded meanwhile.
    assert ok(probe.observe("kernel_module", {"name": "usb_storage"})) == {
        "loaded": False,
        "state": "absent",
    }
    assert probe.observe("kernel_module", {"name": "x;y"})["error"] is not None


# --- libvirt configuration ------------------------------------------------------------------

LIBVIRTD_CONF = """# Master libvirt daemon configuration file
#listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.22"   # trailing comment
auth_tcp = 'none'
unix_sock_rw_perms = "0770"
access_drivers = [ "polkit" ]
tls_allowed_dn_list = ["DN1",
                       # a comment inside a list
                       "DN2"]
max_clients = 5000
log_outputs="3:syslog:libvirtd"
"""


def test_libvirt_conf_parser() -> None:
    assert ho.parse_libvirt_conf(LIBVIRTD_CONF) == {
        "listen_tcp": 1,
        "listen_addr": "127.0.0.22",
        "auth_tcp": "none",
        "unix_sock_rw_perms": "0770",
        "access_drivers": ["polkit"],
        "tls_allowed_dn_list": ["DN1", "DN2"],
        "max_clients": 5000,
        "log_outputs": "3:syslog:libvirtd",
    }


@pytest.mark.parametrize("text", ['a = "open', "a = [1, 2", "a = yes", 'a = "x" junk'])
def test_libvirt_conf_parser_refuses_bad_syntax(text: str) -> None:
    with pytest.raises(ValueError):
        ho.parse_libvirt_conf(text)


def test_libvirt_config_observation(tmp_path: Path) -> None:
    conf = tmp_path / "libvirtd.conf"
    conf.write_text(LIBVIRTD_CONF)
    probe = observer()
    found = probe.observe("libvirt_config", {"path": str(conf), "key": "listen_addr"})
    assert ok(found) == {"found": True, "value": "127.0.0.22"}
    assert found["raw"] == 'listen_addr = "127.0.0.22"   # trailing comment'
    assert ok(probe.observe("libvirt_config", {"path": str(conf), "key": "listen_tls"})) == {
        "found": False,
        "value": None,
    }
    missing = probe.observe("libvirt_config", {"path": str(tmp_path / "qemu.conf"), "key": "x"})
    assert missing["error"] == f"libvirt configuration {tmp_path / 'qemu.conf'} does not exist"
    bad = tmp_path / "bad.conf"
    bad.write_text("a = [1,\n")
    assert (
        "cannot parse" in probe.observe("libvirt_config", {"path": str(bad), "key": "a"})["error"]
    )


def test_libvirt_config_never_returns_a_secret(tmp_path: Path) -> None:
    conf = tmp_path / "qemu.conf"
    conf.write_text('vnc_password = "hunter2"\nvnc_listen = "127.0.0.1"\n')
    observation = observer().observe("libvirt_config", {"path": str(conf), "key": "vnc_password"})
    assert ok(observation) == {"found": True, "value": "<redacted>"}
    assert "hunter2" not in json.dumps(observation)


def test_secret_keys_are_the_cores_and_both_redact_api_key(tmp_path: Path) -> None:
    # One pattern, written twice only because neither side may import the other: the target
    # probe runs without the core, and the core never imports the collection.
    from qualification.spec import InventoryModel
    from qualification.spec.inventory import SECRET_KEY

    assert (ho.SECRET_KEY.pattern, ho.SECRET_KEY.flags) == (SECRET_KEY.pattern, SECRET_KEY.flags)
    conf = tmp_path / "qemu.conf"
    conf.write_text('spice_api_key = "k-4711"\nvnc_listen = "127.0.0.1"\n')
    observation = observer().observe("libvirt_config", {"path": str(conf), "key": "spice_api_key"})
    assert ok(observation) == {"found": True, "value": "<redacted>"}
    assert "k-4711" not in json.dumps(observation)
    model = InventoryModel.from_hostvars(
        {"h1": {"vqual_target_kinds": ["linux_host"], "vqual_api_key": "k-4711",
                "vqual_vcenter_apikey": "k-4711"}}, {"all": ["h1"]})
    recorded = model.snapshot()["hosts"]["h1"]
    assert recorded["vqual_api_key"] == recorded["vqual_vcenter_apikey"] == "<redacted>"
    assert "k-4711" not in json.dumps(model.snapshot())


def test_libvirt_configs_of_this_machine_parse() -> None:
    found = [
        p for p in ("/etc/libvirt/libvirtd.conf", "/etc/libvirt/qemu.conf") if Path(p).exists()
    ]
    if not found:
        pytest.skip("libvirt is not installed here")
    for path in found:
        ok(observer().observe("libvirt_config", {"path": path, "key": "listen_tcp"}))


# --- commands -------------------------------------------------------------------------------


def test_command_runs_without_a_shell() -> None:
    observation = observer().observe("command", {"argv": ["echo", "$HOME", ";", "id"]})
    assert ok(observation) == {"rc": 0, "stdout": "$HOME ; id\n", "stderr": ""}
    assert observation["method"] == "host.command echo $HOME ; id"


def test_command_timeout_and_missing_program() -> None:
    started = time.monotonic()
    slow = observer(command_timeout=1).observe("command", {"argv": ["sleep", "5"]})
    assert slow["error"].endswith("sleep 5 timed out after 1s")
    assert time.monotonic() - started < 4
    assert (
        observer().observe("command", {"argv": ["no-such-program-xyz"]})["error"]
        == "command not found: no-such-program-xyz"
    )
    assert observer().observe("command", {"argv": "ls -l"})["error"] is not None


def test_command_nonzero_rc_is_observed_not_an_error() -> None:
    value = ok(
        observer().observe("command", {"argv": [sys.executable, "-c", "import sys; sys.exit(3)"]})
    )
    assert value["rc"] == 3


def test_raw_is_truncated_with_a_note() -> None:
    text = "x" * (ho.RAW_LIMIT + 10)
    cut = ho.truncate(text)
    assert cut.startswith("x" * ho.RAW_LIMIT)
    assert cut.endswith(f"[truncated: {ho.RAW_LIMIT} of {len(text)} characters shown]")


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_processes_in_another_root_are_not_this_hosts(tmp_path: Path) -> None:
    # A process chrooted elsewhere (a container, a lab host) is another system's process.
    code = "import os, sys, time; os.chroot(sys.argv[1]); print('in', flush=True); time.sleep(30)"
    jailed = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path), "vqual-marker-9271"], stdout=subprocess.PIPE
    )
    free = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "vqual-marker-9271"]
    )
    try:
        assert jailed.stdout is not None and jailed.stdout.readline() == b"in\n"
        found = ok(observer().observe("processes", {"cmdline": "vqual-marker-9271"}))
        assert [p["pid"] for p in found] == [free.pid]
    finally:
        for process in (jailed, free):
            process.kill()
            process.wait()
        assert jailed.stdout is not None
        jailed.stdout.close()


# --- systemd, timedatectl, ntpq and rpm, through stand-in programs ---------------------------
# These paths need systemd, ntpd or an RPM system, which this machine lacks; small scripts
# that print what those tools print (their documented output) stand in for them.


def test_service_with_systemd_uses_systemctl_show(tmp_path: Path) -> None:
    run = tmp_path / "run-systemd"
    run.mkdir()
    systemctl = script(
        tmp_path,
        "systemctl",
        '[ "$1" = "show" ] || exit 9\n'
        'case "$2" in\n'
        "  libvirtd.service) printf 'ActiveState=active\\nSubState=running\\n"
        "UnitFileState=enabled\\nLoadState=loaded\\n';;\n"
        "  *) printf 'ActiveState=inactive\\nSubState=dead\\n"
        "UnitFileState=\\nLoadState=not-found\\n';;\n"
        "esac\n",
    )
    probe = observer(paths={"systemd_run": str(run)}, executables={"systemctl": systemctl})
    active = probe.observe("service", {"name": "libvirtd"})
    assert ok(active) == {"active": True, "enabled": True, "state": "active", "manager": "systemd"}
    assert active["method"] == "host.service systemctl show libvirtd.service"
    missing = ok(probe.observe("service", {"name": "nope.socket"}))
    assert missing == {
        "active": False,
        "enabled": False,
        "state": "not-found",
        "manager": "systemd",
    }


def test_time_sync_from_timedatectl(tmp_path: Path) -> None:
    run = tmp_path / "run-systemd"
    run.mkdir()
    timedatectl = script(
        tmp_path,
        "timedatectl",
        'if [ "$1" = "show" ]; then printf "NTPSynchronized=yes\\nNTP=yes\\n"; exit 0; fi\n'
        'if [ "$1" = "show-timesync" ]; then echo "ServerName=ntp1.example.org"; exit 0; fi\n'
        "exit 1\n",
    )
    probe = observer(
        paths={"systemd_run": str(run)},
        executables={"chronyc": None, "timedatectl": timedatectl},
    )
    observation = probe.observe("time_sync", {})
    assert ok(observation) == {
        "synchronised": True,
        "source": "ntp1.example.org",
        "daemon": "systemd-timesyncd",
    }


def test_time_sync_from_ntpq(tmp_path: Path) -> None:
    ntpq = script(
        tmp_path,
        "ntpq",
        "cat <<'EOF'\n"
        "     remote           refid      st t when poll reach   delay   offset  jitter\n"
        "==============================================================================\n"
        "+10.20.0.12      .GPS.            1 u   33   64  377    0.512    0.021   0.010\n"
        "*10.20.0.11      .GPS.            1 u   35   64  377    0.498   -0.013   0.012\n"
        "EOF\n",
    )
    probe = observer(
        paths={"systemd_run": str(tmp_path / "none")},
        executables={"chronyc": None, "timedatectl": None, "ntpq": ntpq},
    )
    assert ok(probe.observe("time_sync", {})) == {
        "synchronised": True,
        "source": "10.20.0.11",
        "daemon": "ntpd",
    }


def test_packages_from_rpm_when_there_is_no_dpkg(tmp_path: Path) -> None:
    rpm = script(
        tmp_path,
        "rpm",
        '[ "$1" = "-qa" ] || exit 9\n'
        'printf "libvirt-daemon\\t0:9.0.0-10.el9\\nqemu-kvm\\t17:8.0.0-16.el9\\n"\n',
    )
    probe = observer(paths={"dpkg_status": str(tmp_path / "none")}, executables={"rpm": rpm})
    observation = probe.observe(
        "packages", {"names": ["libvirt-daemon", "qemu-kvm", "telnet-server"]}
    )
    assert ok(observation) == {
        "libvirt-daemon": "9.0.0-10.el9",
        "qemu-kvm": "17:8.0.0-16.el9",
        "telnet-server": None,
    }
    assert observation["method"] == "host.packages rpm -qa"


def test_no_package_database_is_an_error(tmp_path: Path) -> None:
    probe = observer(paths={"dpkg_status": str(tmp_path / "none")}, executables={"rpm": None})
    error = probe.observe("packages", {"names": ["bash"]})["error"]
    assert error is not None and error.startswith("no package database found")


# -- fingerprint: a guest's root tree, this machine, an ext4 image read offline ------------

def test_probe_fingerprints_a_root_tree(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    found = ho.HostObserver().observe(
        "fingerprint", {"root": str(root), "files": ["/etc/ssh/*", "/etc/issue", "/nope/*"]}
    )
    assert found["error"] is None, found["error"]
    value = found["value"]
    guest = value["guest"]
    assert guest["os_release"] == {"ID": "debian", "VERSION_ID": "12"}
    assert guest["packages"] == {"openssh-server": "1:9.2p1-2+deb12u5", "procps": "2:4.0.2-3"}
    assert [u["name"] for u in guest["users"]] == ["root", "sshd"]
    assert {"name": "adm", "gid": 4, "members": ["root", "sshd"]} in guest["groups"]
    digest = hashlib.sha256(b"Debian GNU/Linux 12\n").hexdigest()
    assert guest["files"]["/etc/issue"]["sha256"] == digest
    assert sorted(guest["files"]) == ["/etc/issue", "/etc/ssh/sshd_config"]
    assert guest["security"] == {}  # another root: no sshd -T of this machine
    assert value["generalised"] == {
        "machine_id_empty": True, "ssh_host_keys": [], "persistent_net_rules": False
    }
    assert value["identity"]["hostname"] == "vqual-template"
    assert str(root) in found["method"]


def test_probe_limits_are_errors_not_silent_cuts(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    too_many = ho.HostObserver().observe(
        "fingerprint", {"root": str(root), "files": ["/etc/**"], "max_files": 3}
    )
    assert too_many["value"] is None and "more than 3 files" in too_many["error"]
    relative = ho.HostObserver().observe("fingerprint", {"root": str(root), "files": ["etc/x"]})
    assert "absolute" in relative["error"]


def test_probe_on_this_machine_sees_its_identity() -> None:
    found = ho.HostObserver().observe("fingerprint", {"files": ["/etc/hostname"]})
    assert found["error"] is None, found["error"]
    import socket

    assert found["value"]["identity"]["hostname"] == socket.gethostname()
    assert found["value"]["guest"]["packages"]  # this machine's dpkg database
    assert "/etc/hostname" in found["value"]["guest"]["files"]


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None or ho.shutil.which(
    "debugfs", path=ho.SEARCH_PATH) is None, reason="e2fsprogs (mkfs.ext4, debugfs) not installed")
def test_image_read_offline_gives_the_same_fingerprint_as_its_tree(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    image = tmp_path / "template.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(image), "8M"], check=True)
    args = {"files": ["/etc/ssh/*", "/etc/issue"]}
    from_image = ho.fingerprint_image(str(image), dict(args, disk_digest=True))
    assert from_image["error"] is None, from_image["error"]
    from_tree = ho.HostObserver().observe("fingerprint", dict(args, root=str(root)))
    assert from_image["value"]["guest"]["packages"] == from_tree["value"]["guest"]["packages"]
    assert from_image["value"]["guest"]["files"] == from_tree["value"]["guest"]["files"]
    assert from_image["value"]["generalised"]["machine_id_empty"] is True
    assert from_image["value"]["disk_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert "<image>" in from_image["raw"] and str(tmp_path / "vqual-image") not in from_image["raw"]
    missing = ho.fingerprint_image(str(tmp_path / "none.img"), {})
    assert "is not a file" in missing["error"]


def _busy(seconds: float) -> float:
    """Work (hashing) until ``seconds`` passed; returns the time it measured itself."""
    started = time.monotonic()
    data = b"x" * 4096
    while time.monotonic() - started < seconds:
        data = hashlib.sha256(data).digest() * 128
    return time.monotonic() - started


def test_each_observation_carries_its_own_time_not_the_batch_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    took: dict[str, float] = {}

    def slow(_observer: Any, _args: dict[str, Any]) -> dict[str, Any]:
        took["slow"] = _busy(0.2)
        return ho.observation(value=1, method="host.slow")

    monkeypatch.setitem(ho.OBSERVATIONS, "slow", slow)
    results = observer().observe_all(
        [{"key": "fast", "method": "kernel"}, {"key": "slow", "method": "slow"}]
    )
    assert results["slow"]["seconds"] >= took["slow"] >= 0.2
    # The kernel read is its own: far less than the slow one's, though in the same batch.
    assert results["fast"]["seconds"] < took["slow"] / 2
