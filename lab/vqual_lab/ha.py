"""A real HA stack on the lab's two KVM hosts, for the failover OQ (docs/ha.md).

Debian's pacemaker and corosync run in the chroot hosts as a two-node cluster on loopback
with one ``VirtualDomain`` resource: a throwaway TCG guest whose disk (a qcow2 overlay on the
Master-VM image) is on the storage both hosts see. Nothing of it is in the hosts' cached
base (its digest and the CI lab's ``up`` time stay as they are): the packages are installed
into the hosts' overlays when the stack comes up and purged when it goes down, and the host
files their scripts change (users, groups) are put back, so the lab is left as it was found.

Lab compromises, each for a reason this machine gives:

- **No fencing** (``stonith-enabled=false``): the hosts share one kernel, so there is no
  power switch or watchdog to fence one with; the failed host is really gone (its PID
  namespace killed, QEMU with it), which is what fencing would have made sure of.
- **two_node** (corosync votequorum): the survivor keeps quorum alone.
- **Filesystem IPC sockets** (``/etc/libqb/force-filesystem-sockets``): libqb's default
  abstract sockets live in the network namespace, which the hosts share with each other
  and the machine; each host's daemons would find the other host's.
- **No init**: ``corosync -f`` and ``pacemakerd`` are started in the host by PID and stopped
  by PID (their PIDs in ``/run/vqual-lab/ha-*.pid``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.errors import PlatformError
from vqual_lab.component import LabContext, file_lock

PACKAGES = ("pacemaker", "corosync", "resource-agents", "pacemaker-cli-utils")
DEBS_SUBDIR = "ha-debs"
HA_SUBDIR = "ha"
RESOURCE = "vqual-ha-guest"
GUEST = "vqual-tmp-ha"
CLUSTER_NAME = "vqual-lab-ha"
STATE_KEY = "ha"  # in run/state.json: where the guest's files are
#: corosync's token timeout: a lost host is noticed after about this (plus consensus, 1.2x).
TOKEN_MS = 1000
#: Files the packages' scripts change in a host that the purge does not put back.
_KEPT = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
_LEFT = (
    "/etc/libqb",
    "/etc/corosync",
    "/etc/pacemaker",
    "/var/lib/pacemaker",
    "/var/lib/corosync",
    "/var/log/pacemaker",
    "/var/log/corosync",
    "/var/log/cluster",
    "/run/resource-agents",
)
#: Until both hosts are members and one is DC: corosync joins in about 1 s, pacemaker's
#: controller elects a DC after dc-deadtime (20 s default); measured 18-25 s here. 120 s.
CLUSTER_READY_S = 120.0
#: A package install in one host (51 packages, dpkg only): 6-10 s measured, load 5.
INSTALL_S = 300.0

_CONF = """totem {{
  version: 2
  cluster_name: {name}
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  token: {token}
}}
nodelist {{
{nodes}
}}
quorum {{
  provider: corosync_votequorum
  two_node: 1
}}
logging {{
  to_stderr: yes
  to_logfile: yes
  logfile: /var/log/corosync/corosync.log
  to_syslog: no
  timestamp: on
}}
"""
_NODE = """  node {{
    ring0_addr: {address}
    name: {name}
    nodeid: {nodeid}
  }}"""


def corosync_conf(hosts: Sequence[tuple[str, str]]) -> str:
    """corosync.conf for ``hosts`` ((name, address) each): knet on their addresses."""
    nodes = "\n".join(
        _NODE.format(address=address, name=name, nodeid=i + 1)
        for i, (name, address) in enumerate(hosts)
    )
    return _CONF.format(name=CLUSTER_NAME, token=TOKEN_MS, nodes=nodes)


def resource_xml(config: str) -> str:
    """The CIB primitive of the guest: ocf:heartbeat:VirtualDomain on ``config``."""
    prim = ET.Element(
        "primitive", id=RESOURCE, attrib={"class": "ocf", "provider": "heartbeat"},
        type="VirtualDomain",
    )
    attrs = ET.SubElement(prim, "instance_attributes", id=f"{RESOURCE}-attrs")
    for name, value in (("config", config), ("hypervisor", "qemu:///system"),
                        ("force_stop", "true")):
        ET.SubElement(attrs, "nvpair", id=f"{RESOURCE}-{name}", name=name, value=value)
    ops = ET.SubElement(prim, "operations")
    for name, interval, timeout in (("monitor", "2s", "30s"), ("start", "0s", "90s"),
                                    ("stop", "0s", "90s")):
        ET.SubElement(ops, "op", id=f"{RESOURCE}-{name}", name=name, interval=interval,
                      timeout=timeout)
    return ET.tostring(prim, encoding="unicode")


# --- packages ------------------------------------------------------------------------------


def debs_dir(lab_dir: Path) -> Path:
    """Where the stack's .debs are: on the shared storage, so every host sees them."""
    return lab_dir / "shared" / DEBS_SUBDIR


def ensure_debs(ctx: LabContext) -> list[Path]:
    """Download the stack's packages and what they need beyond the hosts' base (once).

    apt on this machine resolves them against the base's own dpkg status, from the
    machine's configured mirror, and downloads them (about 50 packages, 14 MB).
    """
    from vqual_lab import kvm

    out = debs_dir(ctx.lab_dir)
    stamp = out / "packages.json"
    with file_lock(ctx.lab_dir / "cache" / "ha-debs.lock"):
        if stamp.is_file():
            names = json.loads(stamp.read_text())
            debs = [out / n for n in names]
            if all(d.is_file() for d in debs):
                return debs
        status = kvm.Paths.of(ctx).base / "var/lib/dpkg/status"
        sim = _run(["apt-get", "-o", f"Dir::State::status={status}", "-o",
                    "Debug::NoLocking=1", "install", "-s", "--no-install-recommends",
                    *PACKAGES])
        wanted = [f"{m[1]}={m[2]}" for m in re.finditer(r"^Inst (\S+) \((\S+)", sim, re.MULTILINE)]
        if not wanted:
            raise PlatformError("apt resolved no packages for the HA stack", where="lab ha")
        tmp = out.with_name(DEBS_SUBDIR + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _run(["apt-get", "download", *wanted], cwd=tmp)
        names = sorted(p.name for p in tmp.glob("*.deb"))
        (tmp / "packages.json").write_text(json.dumps(names) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        ctx.log(f"ha: {len(names)} packages downloaded for {', '.join(PACKAGES)}")
        return [out / n for n in names]


# --- the stack in the hosts ---------------------------------------------------------------


@dataclass
class HaStack:
    """The HA stack on the lab's KVM hosts: ``up`` installs, configures and starts it and
    puts the guest under it; ``down`` takes all of it away again."""

    ctx: LabContext

    @property
    def kvm(self) -> Any:
        from vqual_lab import manager

        return manager.component("kvm")

    @property
    def hosts(self) -> list[tuple[str, str]]:
        return [(h.name, h.address) for h in self.kvm.hosts]

    def sh(self, host: str, script: str, *, check: bool = True) -> str:
        proc = self.kvm.exec(self.ctx, host, ["sh", "-c", script])
        if check and proc.returncode != 0:
            err = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            raise PlatformError(
                f"{script.split()[0]} failed (exit {proc.returncode}): "
                f"{' | '.join(err[-3:]) if err else 'no output'}",
                where=f"lab ha {host}",
            )
        return str(proc.stdout.decode(errors="replace"))

    def up(self) -> dict[str, Any]:
        """Install and start the stack on every host and start the guest under it.

        Returns:
            Seconds per phase (``install_s``, ``cluster_s``, ``guest_s``) and the versions.
        """
        started = time.monotonic()
        debs = ensure_debs(self.ctx)
        inner = f"/srv/vqual-shared/{DEBS_SUBDIR}"
        conf = corosync_conf(self.hosts)
        # Both hosts at once: dpkg in one host does not wait for the other's.
        with ThreadPoolExecutor(len(self.hosts)) as pool:
            for done in [pool.submit(self._install, name, [f"{inner}/{d.name}" for d in debs],
                                     conf) for name, _ in self.hosts]:
                done.result()
        install_s = time.monotonic() - started
        for name, _ in self.hosts:
            self._start(name)
        first = self.hosts[0][0]
        self.wait_cluster(first)
        cluster_s = time.monotonic() - started - install_s
        config = self._guest_config(first)
        self.sh(first, "crm_attribute --type crm_config --name stonith-enabled --update false"
                " && crm_attribute --type crm_config --name no-quorum-policy --update ignore")
        self._with_budget(lambda: self.sh(
            first, f"cibadmin --create -o resources --xml-text '{resource_xml(config)}'"))
        return {"install_s": round(install_s, 2), "cluster_s": round(cluster_s, 2),
                "versions": self.versions(first)}

    def _with_budget(self, start: Any) -> None:
        # The guest counts against the lab's VM budget like any other: count and start under
        # the budget's lock (pacemaker starts it a moment later).
        from vqual_lab import guests

        with file_lock(self.ctx.lab_dir / "run" / "guests-budget.lock"):
            guests.check_budget(GUEST, list(guests.running_guests()))
            start()

    def _install(self, host: str, debs: list[str], conf: str) -> None:
        # The files as the base had them; a second ``up`` must not overwrite that copy.
        keep = " && ".join(f"{{ [ -f {f}.vqual-ha ] || cp -p {f} {f}.vqual-ha; }}" for f in _KEPT)
        self.sh(host, keep)
        # apt orders the local .debs by their (pre-)dependencies; dpkg -i alone does not.
        apt = ("apt-get install -y -q --no-install-recommends "
               "-o Dpkg::Options::=--force-confold " + " ".join(debs))
        self.sh(host, f"{apt} >/tmp/ha-apt.log 2>&1 || {{ tail -5 /tmp/ha-apt.log >&2; exit 1; }}")
        # libqb: IPC on filesystem sockets in the host's own /tmp (see the module docstring).
        script = ("mkdir -p /etc/libqb && touch /etc/libqb/force-filesystem-sockets"
                  " && cat > /etc/corosync/corosync.conf")
        self.kvm.exec(self.ctx, host, ["sh", "-c", script], input=conf.encode())

    def _start(self, host: str) -> None:
        for daemon, argv in (("corosync", "corosync -f"), ("pacemakerd", "pacemakerd")):
            log = f"/var/log/vqual-lab/ha-{daemon}.log"
            self.sh(host, f"mkdir -p /var/log/vqual-lab /run/vqual-lab; setsid {argv} "
                    f">{log} 2>&1 </dev/null & echo $! > /run/vqual-lab/ha-{daemon}.pid")

    def wait_cluster(self, host: str, bound: float = CLUSTER_READY_S) -> float:
        """Until every host is online and one is DC; returns the seconds it took."""
        started = time.monotonic()
        names = {n for n, _ in self.hosts}
        last = ""
        while time.monotonic() - started < bound:
            out = self.sh(host, "crm_mon -1 --output-as=xml", check=False)
            try:
                root = ET.fromstring(out)
            except ET.ParseError:
                root = None
            if root is not None:
                dc = root.find("./summary/current_dc")
                online = {n.get("name") for n in root.iterfind("./nodes/node")
                          if n.get("online") == "true"}
                if dc is not None and dc.get("present") == "true" and names <= online:
                    return time.monotonic() - started
                last = f"online {sorted(x for x in online if x)}"
            time.sleep(0.5)
        raise PlatformError(f"the HA cluster did not form within {bound:.0f} s ({last})",
                            where="lab ha")

    def _guest_config(self, host: str) -> str:
        """The guest's overlay and domain XML on the shared storage; its config path inside."""
        from vqual_lab import guests, kvm

        image = guests.build_master_image(self.ctx.lab_dir, self.ctx.log)
        files = guests.publish_image(self.ctx.lab_dir, image)
        guests.make_overlay(Path("master.img"), files.outside(f"{GUEST}.qcow2"))
        files.outside(f"{GUEST}.serial.log").unlink(missing_ok=True)
        spec = guests.GuestSpec(GUEST, "clone", host, "127.0.0.1", 1, autostart=False)
        pub = kvm.Paths.of(self.ctx).ssh_key.with_suffix(".pub").read_text().strip()
        xml = guests.domain_xml(spec, files, pub)
        # Reached through its agent only: no network device, no port forward to clash with.
        xml = re.sub(r"\s*<qemu:commandline>.*?</qemu:commandline>", "", xml, flags=re.DOTALL)
        (files.outer / f"{GUEST}.xml").write_text(xml)
        self.ctx.update_state(STATE_KEY, {"files": str(files.outer)})
        return files.inside(f"{GUEST}.xml")

    def versions(self, host: str) -> dict[str, str]:
        """Installed versions of the stack and of libvirt and QEMU in ``host``."""
        out = self.sh(host, "dpkg-query -W pacemaker corosync resource-agents libknet1 "
                      "libqb100 libvirt-daemon qemu-system-x86", check=False)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def located(self, host: str) -> str | None:
        """The host pacemaker says runs the guest, asked on ``host``."""
        out = self.sh(host, f"crm_resource --resource {RESOURCE} --locate 2>/dev/null",
                      check=False)
        m = re.search(r"is running on: (\S+)", out)
        return m.group(1) if m else None

    def down(self) -> list[str]:
        """Stop the stack and the guest, purge the packages, put the hosts' files back.

        Returns what could not be done (empty when everything was).
        """
        problems: list[str] = []
        for name, _ in self.hosts:
            try:
                self._down_host(name)
            except PlatformError as exc:
                problems.append(exc.one_line())
        outer = (self.ctx.state().get(STATE_KEY) or {}).get("files")
        if outer:
            for suffix in (".qcow2", ".serial.log", ".xml"):
                (Path(outer) / f"{GUEST}{suffix}").unlink(missing_ok=True)
        if not problems:
            self.ctx.update_state(STATE_KEY, {})
        return problems

    def _down_host(self, host: str) -> None:
        alive = self.kvm._alive(self.kvm._records(self.ctx).get(host) or {})
        if not alive:
            raise PlatformError(f"{host} is not running: power it on first", where="lab ha")
        for daemon in ("pacemakerd", "corosync"):
            pidfile = f"/run/vqual-lab/ha-{daemon}.pid"
            self.sh(host, f"[ -f {pidfile} ] || exit 0; p=$(cat {pidfile}); kill $p 2>/dev/null;"
                    f" i=0; while kill -0 $p 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1;"
                    f" i=$((i+1)); done; kill -9 $p 2>/dev/null; rm -f {pidfile}; true")
        self.sh(host, f"virsh -c qemu:///system destroy {GUEST} >/dev/null 2>&1; true")
        # Exactly the packages the stack brought (no autoremove: it could take base packages).
        names = " ".join(sorted({d.name.split("_", 1)[0] for d in ensure_debs(self.ctx)}))
        # Whichever of them are installed: an install that failed half-way leaves some.
        self.sh(host, f"set -- $(for p in {names}; do st=$(dpkg-query -W -f='${{Status}}' $p "
                "2>/dev/null) && case $st in *not-installed) ;; *) echo $p;; esac; done);"
                " [ $# -eq 0 ] && exit 0;"
                " apt-get purge -y -q \"$@\" >/tmp/ha-purge.log 2>&1 || "
                "{ tail -5 /tmp/ha-purge.log >&2; exit 1; }")
        restore = " ".join(
            f"[ -f {f}.vqual-ha ] && mv -f {f}.vqual-ha {f};" for f in _KEPT
        )
        self.sh(host, f"{restore} rm -rf {' '.join(_LEFT)} /tmp/ha-*.log; true")


def _run(argv: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PlatformError(f"{argv[0]} {argv[1]} failed (exit {proc.returncode}): "
                            f"{' | '.join(tail)}", where="lab ha")
    return proc.stdout
