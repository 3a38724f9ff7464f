"""Parts of the KVM lab and its manager that run without the lab: the apt mirror taken from
the machine's sources, the state file, the inventory and ssh_config, the lab repository."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from qualification.errors import PlatformError
from vqual_lab import manager, repo
from vqual_lab.component import LabContext
from vqual_lab.kvm import DEFAULT_HOSTS, KvmCluster, KvmHost, apt_mirror, hosts_from_env


def _ctx(tmp_path: Path) -> LabContext:
    return LabContext(tmp_path, tmp_path / "run", None, lambda _m: None)


def test_apt_mirror_from_deb822_skips_security_and_updates(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb-src deb\n"
        "# a comment: here\n"
        "URIs: http://mirror.example/debian/\n"
        "Suites: bookworm-updates bookworm\n"
        "Components: main\n"
    )
    assert apt_mirror(tmp_path) == ("http://mirror.example/debian", "bookworm")


def test_apt_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian buster main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert apt_mirror(tmp_path) == ("http://one.example/debian", "bookworm")


def test_apt_mirror_ignores_disabled_files_and_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "x.list.disabled").write_text(
        "deb http://x.example/debian bookworm main\n"
    )
    with pytest.raises(PlatformError, match="no Debian release entry"):
        apt_mirror(tmp_path)


def test_hosts_from_env_value() -> None:
    assert hosts_from_env("") == DEFAULT_HOSTS
    assert hosts_from_env("a=127.0.0.21, b=127.1.2.3") == (
        KvmHost("a", "127.0.0.21"),
        KvmHost("b", "127.1.2.3"),
    )
    assert KvmHost("a", "127.0.0.21").host_uuid != KvmHost("b", "127.0.0.21").host_uuid


@pytest.mark.parametrize("value", ["kvm1=10.0.0.1", "kvm1", "kvm1=127.0.0.300", "K=127.0.0.1"])
def test_hosts_from_env_refuses_non_loopback_or_malformed(value: str) -> None:
    from qualification.errors import BadInputError

    with pytest.raises(BadInputError, match="VQUAL_LAB_KVM_HOSTS"):
        hosts_from_env(value)


def test_save_state_from_parallel_threads_keeps_every_key(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        state = ctx.state()
        barrier.wait()  # every thread holds a snapshot without the others' keys
        state[f"c{i}"] = {"pid": i}
        ctx.save_state(state)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ctx.state() == {f"c{i}": {"pid": i} for i in range(8)}
    state = ctx.state()
    del state["c3"]
    ctx.save_state(state)
    ctx.update_state("c4", None)
    assert sorted(ctx.state()) == [f"c{i}" for i in range(8) if i not in (3, 4)]


def _update_many(lab_dir: str, key: str) -> None:
    ctx = LabContext(Path(lab_dir), Path(lab_dir) / "run", None, lambda _m: None)
    for i in range(30):
        ctx.update_state(key, {"n": i})


def test_update_state_from_parallel_processes_keeps_every_key(tmp_path: Path) -> None:
    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    procs = [mp.Process(target=_update_many, args=(str(tmp_path), f"c{i}")) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert _ctx(tmp_path).state() == {f"c{i}": {"n": 29} for i in range(4)}


def test_inventory_and_ssh_config_from_the_kvm_fragment(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    inv = manager.build_inventory([KvmCluster(DEFAULT_HOSTS).inventory(ctx)])
    group = inv["all"]["children"]["kvm_hosts"]
    assert group["hosts"]["kvm2"] == {
        "ansible_host": "127.0.0.12",
        "vqual_libvirt_uri": "qemu+tcp://127.0.0.12/system",
        # one fire compartment per host (URS-CL-02)
        "vqual_site": "lab",
        "vqual_fire_compartment": "FC-2",
    }
    assert group["vars"]["ansible_ssh_private_key_file"] == str(tmp_path / "ssh/id_ed25519")
    assert group["vars"]["ansible_python_interpreter"] == "/usr/bin/python3"
    yaml.safe_load(yaml.safe_dump(inv))  # plain data only
    config = manager.ssh_config(inv)
    assert f"Host kvm1\n  HostName 127.0.0.11\n  User root\n  IdentityFile {tmp_path}" in config
    # ssh itself accepts the file and resolves a host from it.
    (tmp_path / "ssh_config").write_text(config)
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(tmp_path / "ssh_config"), "kvm2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "hostname 127.0.0.12" in resolved
    assert "stricthostkeychecking false" in resolved


def test_lab_repository_offers_the_newer_agent(tmp_path: Path) -> None:
    path = repo.ensure_repo(tmp_path)
    packages = (path / "Packages").read_text()
    assert "Package: vqual-lab-agent\nVersion: 1.1\n" in packages
    assert gzip.decompress((path / "Packages.gz").read_bytes()).decode() == packages
    release = (path / "Release").read_text()
    digest = hashlib.sha256((path / "Packages").read_bytes()).hexdigest()
    assert f" {digest} {len(packages.encode())} Packages\n" in release
    info = subprocess.run(
        ["dpkg-deb", "-f", str(repo.agent_deb(tmp_path, "1.0")), "Package", "Version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert info == "Package: vqual-lab-agent\nVersion: 1.0\n"
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(path / "vqual-lab-agent_1.1_all.deb")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "root/root" in listing and "./usr/sbin/vqual-lab-agent" in listing


def test_unknown_component_is_bad_input() -> None:
    from qualification.errors import BadInputError

    with pytest.raises(BadInputError, match="no lab component 'nope'"):
        manager.up(["nope"])
