# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

"""Target-side observations of a Linux host, shared by the host probe module.

Standard library only: this file is shipped to the target inside the module payload. A
:class:`HostObserver` answers a batch of requests ``{key, method, args}`` with observations
``{value, raw, method, error, not_executed}``. It reads files directly instead of forking
where it can, reads each shared source once per batch (the package database, /proc/net/*,
``sshd -T``, the process table), runs commands as argv lists without a shell and with a
timeout, and turns a failure of one observation into that observation's ``error``.
Nothing here writes to the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import grp
import hashlib
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import threading

RAW_LIMIT = 16384
TEXT_LIMIT = 65536
MATCH_LIMIT = 200
DEFAULT_TIMEOUT = 10
REDACTED = "<redacted>"
#: Keys whose values are never returned (matched anywhere in the key, any case): the definition
#: of qualification.spec.inventory.SECRET_KEY, which redacts the inventory on the controller.
#: This file runs on targets, where the core is not installed, and the core never imports the
#: collection, so the pattern is written in both; tests/unit/plugins/module_utils/
#: test_host_observations.py holds the two equal.
SECRET_KEY = re.compile(r"pass|secret|token|private|credential|api_?key", re.IGNORECASE)

DEFAULT_PATHS = {
    "os_release": ("/etc/os-release", "/usr/lib/os-release"),
    "dpkg_status": "/var/lib/dpkg/status",
    "proc": "/proc",
    "dmi": "/sys/class/dmi/id",
    "sys_module": "/sys/module",
    "systemd_run": "/run/systemd/system",
}

# Where the tools live on the distributions vqual targets; PATH is not trusted to hold sbin.
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_FILE_TYPES = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "link"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISCHR, "char"),
)

# /proc/net/tcp state 0A is LISTEN; UDP sockets have no listen state, 07 (CLOSE) is unconnected.
_LISTEN_STATES = {"tcp": "0A", "udp": "07"}


class ObservationError(Exception):
    """This observation cannot be made; the message becomes its ``error``."""


def truncate(text, limit=RAW_LIMIT):
    """Text cut to ``limit`` characters, saying how much was left out."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "\n... [truncated: %d of %d characters shown]" % (limit, len(text))


def read_text(path, limit=None):
    with open(path, "rb") as handle:
        data = handle.read() if limit is None else handle.read(limit)
    return data.decode("utf-8", "replace")


def parse_os_release(text):
    """Fields of an os-release file (shell-style assignments, quotes removed)."""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            value = re.sub(r"\\(.)", r"\1", value)
        fields[name.strip()] = value
    return fields


def parse_dpkg_status(text):
    """Installed packages of a dpkg status file: ``{name: version}``.

    A package counts as installed when its status is ``install ok installed`` (or half-set
    states that still have files: unpacked, half-configured are reported as not installed).
    Multi-arch packages appear once per architecture; the first version wins.
    """
    packages = {}
    for stanza in text.split("\n\n"):
        name = version = status = None
        for line in stanza.splitlines():
            if line.startswith("Package:"):
                name = line[8:].strip()
            elif line.startswith("Version:"):
                version = line[8:].strip()
            elif line.startswith("Status:"):
                status = line[7:].split()
        if name and version and status and status[-1] == "installed":
            packages.setdefault(name, version)
    return packages


def parse_proc_net(text, protocol, family):
    """Listening sockets from /proc/net/{tcp,tcp6,udp,udp6}: ``[{address, port}]``."""
    listening = []
    wanted = _LISTEN_STATES[protocol]
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != wanted:
            continue
        address, _, port = parts[1].partition(":")
        if protocol == "udp" and parts[2].split(":")[0].strip("0"):
            continue  # a connected UDP socket is not a listener
        listening.append({"address": _decode_address(address, family), "port": int(port, 16)})
    return listening


def _decode_address(hex_address, family):
    raw = bytes.fromhex(hex_address)
    # The kernel prints each 32-bit word in host (little-endian) byte order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, words)


def parse_libvirt_conf(text):
    """Settings of a libvirt config file (libvirtd.conf, qemu.conf): ``{key: value}``.

    The syntax (libvirt's virconf): ``key = value`` where a value is a quoted string (double
    or single quotes), an integer, or a list ``[ v, v ]`` that may span lines; ``#`` starts a
    comment outside strings. Commented-out keys are not set (libvirt then uses its default).
    """
    settings = {}
    position = 0
    length = len(text)
    key_re = re.compile(r"[ \t]*([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*")
    while position < length:
        line_end = text.find("\n", position)
        line_end = length if line_end < 0 else line_end
        match = key_re.match(text, position, line_end)
        if not match:
            position = line_end + 1
            continue
        key = match.group(1)
        value, position = _conf_value(text, match.end(), key)
        settings[key] = value
        rest_end = text.find("\n", position)
        rest_end = length if rest_end < 0 else rest_end
        rest = text[position:rest_end].strip()
        if rest and not rest.startswith("#"):
            raise ValueError("unexpected text after the value of %s: %r" % (key, rest[:40]))
        position = rest_end + 1
    return settings


def _conf_value(text, position, key):
    position = _skip_blank(text, position, newlines=False)
    if position >= len(text):
        raise ValueError("missing value for %s" % key)
    char = text[position]
    if char in "\"'":
        end = text.find(char, position + 1)
        if end < 0:
            raise ValueError("unterminated string for %s" % key)
        return text[position + 1 : end], end + 1
    if char == "[":
        items = []
        position += 1
        while True:
            position = _skip_blank(text, position, newlines=True)
            if position >= len(text):
                raise ValueError("unterminated list for %s" % key)
            if text[position] == "]":
                return items, position + 1
            item, position = _conf_value(text, position, key)
            items.append(item)
            position = _skip_blank(text, position, newlines=True)
            if position < len(text) and text[position] == ",":
                position += 1
    number = re.compile(r"-?[0-9]+").match(text, position)
    if number:
        return int(number.group(0)), number.end()
    raise ValueError("cannot parse the value of %s" % key)


def _skip_blank(text, position, newlines):
    blanks = " \t\r\n" if newlines else " \t\r"
    while position < len(text):
        char = text[position]
        if char in blanks:
            position += 1
        elif char == "#" and newlines:
            end = text.find("\n", position)
            position = len(text) if end < 0 else end + 1
        else:
            break
    return position


def parse_sshd_t(text):
    """``sshd -T`` output as ``{key: [values]}`` (keys are printed in lower case)."""
    settings = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            settings.setdefault(key.lower(), []).append(value.strip())
    return settings


def parse_chronyc_tracking(text):
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


class HostObserver:
    """Answers observation requests on this host, reading each shared source once.

    Args:
        paths: overrides of :data:`DEFAULT_PATHS` (tests point them at files they made).
        command_timeout: seconds a command may run before its observation is an error.
        executables: overrides of where a tool is, e.g. ``{"sshd": "/opt/sshd"}``.
    """

    def __init__(self, paths=None, command_timeout=DEFAULT_TIMEOUT, executables=None):
        self.paths = dict(DEFAULT_PATHS)
        self.paths.update(paths or {})
        self.command_timeout = command_timeout
        self.executables = dict(executables or {})
        self._cache = {}

    # --- plumbing -------------------------------------------------------------------------

    def observe_all(self, requests):
        """``{key: observation}`` for a list of ``{key, method, args}`` requests."""
        results = {}
        for request in requests:
            key = request.get("key") or "%s:%r" % (request.get("method"), request.get("args"))
            if key not in results:
                results[key] = self.observe(request.get("method"), request.get("args") or {})
        return results

    def observe(self, method, args):
        """One observation; never raises."""
        handler = getattr(self, "m_" + str(method), None) if method else None
        if handler is None:
            return _observation(
                error="unknown host probe method %r" % (method,), method=str(method)
            )
        try:
            return handler(dict(args))
        except ObservationError as exc:
            return _observation(error=str(exc), method="host.%s" % method)
        except Exception as exc:
            # One bad observation (a bad regex, an odd file) never ends the whole call.
            return _observation(
                error="%s failed: %s: %s" % (method, type(exc).__name__, exc),
                method="host.%s" % method,
            )

    def _cached(self, name, produce):
        if name not in self._cache:
            try:
                self._cache[name] = (True, produce())
            except Exception as exc:  # remembered, so 20 tests share one failure, not 20 tries
                self._cache[name] = (False, exc)
        ok, value = self._cache[name]
        if not ok:
            raise value
        return value

    def which(self, name):
        if name in self.executables:
            return self.executables[name]
        return shutil.which(name, path=SEARCH_PATH + ":" + os.environ.get("PATH", ""))

    def run(self, argv, timeout=None):
        """``(rc, stdout, stderr)`` of a command run without a shell, in the C locale."""
        env = dict(os.environ, LC_ALL="C", LANG="C")
        try:
            completed = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=timeout or self.command_timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ObservationError(
                "%s timed out after %ss" % (" ".join(argv), timeout or self.command_timeout)
            ) from None
        except OSError as exc:
            raise ObservationError("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
        return (
            completed.returncode,
            completed.stdout.decode("utf-8", "replace"),
            completed.stderr.decode("utf-8", "replace"),
        )

    # --- methods: each returns an observation dict ------------------------------------------

    def m_os_release(self, args):
        for path in _as_tuple(self.paths["os_release"]):
            if os.path.exists(path):
                text = read_text(path)
                return _observation(parse_os_release(text), truncate(text), "host.file %s" % path)
        raise ObservationError(
            "no os-release file (%s)" % ", ".join(_as_tuple(self.paths["os_release"]))
        )

    def m_kernel(self, args):
        info = os.uname()
        value = {"release": info.release, "version": info.version, "machine": info.machine}
        return _observation(
            value, "%s %s %s" % (info.sysname, info.release, info.version), "host.uname"
        )

    def _dpkg(self):
        return parse_dpkg_status(read_text(self.paths["dpkg_status"]))

    def _rpm(self):
        rpm = self.which("rpm")
        rc, out, err = self.run(
            [rpm, "-qa", "--queryformat", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n"]
        )
        if rc != 0:
            raise ObservationError("rpm -qa failed (rc %d): %s" % (rc, err.strip()[:200]))
        packages = {}
        for line in out.splitlines():
            name, _, version = line.partition("\t")
            if version.startswith("0:"):
                version = version[2:]
            packages.setdefault(name, version)
        return packages

    def _package_db(self):
        if os.path.exists(self.paths["dpkg_status"]):
            return "host.packages dpkg %s" % self.paths["dpkg_status"], self._cached(
                "dpkg", self._dpkg
            )
        if self.which("rpm"):
            return "host.packages rpm -qa", self._cached("rpm", self._rpm)
        raise ObservationError(
            "no package database found (neither %s nor rpm)" % self.paths["dpkg_status"]
        )

    def m_packages(self, args):
        names = [str(name) for name in args.get("names") or []]
        method, packages = self._package_db()
        value = dict((name, packages.get(name)) for name in names)
        raw = "\n".join("%s %s" % (name, value[name] or "(not installed)") for name in names)
        return _observation(value, raw, method)

    def _process_table(self):
        """Processes that share this probe's root directory.

        A process chrooted elsewhere belongs to another system (a container or a lab host in
        a chroot) and is left out; one whose root cannot be read is kept.
        """
        proc = self.paths["proc"]
        own_root = _readlink(os.path.join(proc, "self", "root"))
        table = []
        for entry in os.listdir(proc):
            if not entry.isdigit():
                continue
            try:
                comm = read_text(os.path.join(proc, entry, "comm")).strip()
                cmdline = read_text(os.path.join(proc, entry, "cmdline")).replace("\0", " ").strip()
            except OSError:
                continue  # the process ended while we looked
            root = _readlink(os.path.join(proc, entry, "root"))
            if own_root is not None and root is not None and root != own_root:
                continue
            table.append({"pid": int(entry), "name": comm, "cmdline": cmdline})
        return sorted(table, key=lambda p: p["pid"])

    def _matching_processes(self, name=None, cmdline=None):
        table = self._cached("processes", self._process_table)
        pattern = re.compile(cmdline) if cmdline else None
        found = []
        for process in table:
            # comm is cut at 15 characters; compare the program name from cmdline as well.
            program = (
                os.path.basename(process["cmdline"].split(" ", 1)[0]) if process["cmdline"] else ""
            )
            if (
                name
                and name not in (process["name"], program)
                and not (len(name) > 15 and name[:15] == process["name"])
            ):
                continue
            if pattern and not pattern.search(process["cmdline"]):
                continue
            found.append(process)
        return found

    def m_processes(self, args):
        name, cmdline = args.get("name"), args.get("cmdline")
        if not name and not cmdline:
            raise ObservationError("processes: give name or cmdline")
        found = self._matching_processes(name, cmdline)
        raw = "\n".join("%d %s" % (p["pid"], p["cmdline"] or "[%s]" % p["name"]) for p in found)
        what = " ".join(
            part
            for part in (name and "name=%s" % name, cmdline and "cmdline=/%s/" % cmdline)
            if part
        )
        return _observation(found, truncate(raw) or None, "host.processes %s" % what)

    def m_service(self, args):
        name = str(args["name"])
        unit = name if "." in name else name + ".service"
        systemctl = self.which("systemctl")
        if systemctl and os.path.isdir(self.paths["systemd_run"]):
            rc, out, err = self.run(
                [
                    systemctl,
                    "show",
                    unit,
                    "--no-pager",
                    "--property=ActiveState,SubState,UnitFileState,LoadState",
                ]
            )
            if rc != 0:
                raise ObservationError(
                    "systemctl show %s failed (rc %d): %s" % (unit, rc, err.strip()[:200])
                )
            props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            value = {
                "active": props.get("ActiveState") == "active",
                "enabled": props.get("UnitFileState")
                in ("enabled", "enabled-runtime", "static", "alias"),
                "state": props.get("ActiveState"),
                "manager": "systemd",
            }
            if props.get("LoadState") == "not-found":
                value["state"] = "not-found"
            return _observation(value, out.strip(), "host.service systemctl show %s" % unit)
        process = str(args.get("process") or name)
        found = self._matching_processes(name=process)
        value = {
            "active": bool(found),
            "enabled": None,
            "state": "running" if found else "no process",
            "manager": "process",
        }
        raw = "\n".join("%d %s" % (p["pid"], p["cmdline"]) for p in found)
        return _observation(
            value,
            raw or None,
            "host.service no systemd running: process check for %s (enabled state unknown)"
            % process,
        )

    def _stat(self, path):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        kind = next((label for test, label in _FILE_TYPES if test(info.st_mode)), "other")
        return {
            "exists": True,
            "type": kind,
            "mode": "%04o" % stat.S_IMODE(info.st_mode),
            "uid": info.st_uid,
            "gid": info.st_gid,
            "owner": _user_name(info.st_uid),
            "group": _group_name(info.st_gid),
            "size": info.st_size,
            "target": os.readlink(path) if kind == "link" else None,
        }

    def m_file(self, args):
        path = _absolute(args.get("path"))
        value = self._stat(path)
        if value is None:
            return _observation({"exists": False}, None, "host.file %s" % path)
        raw = "%s %s %s:%s %d %s" % (
            value["mode"],
            value["type"],
            value["owner"],
            value["group"],
            value["size"],
            path,
        )
        if args.get("checksum"):
            if value["type"] != "file":
                real = os.path.realpath(path)
                if not os.path.isfile(real):
                    raise ObservationError("cannot checksum %s: it is a %s" % (path, value["type"]))
            value["sha256"] = _sha256(path)
            raw += "\nsha256 %s" % value["sha256"]
        return _observation(value, raw, "host.file %s" % path)

    def m_file_content(self, args):
        path = _absolute(args.get("path"))
        pattern = re.compile(str(args.get("pattern") or ""))
        if not os.path.exists(path):
            return _observation({"exists": False}, None, "host.file_content %s" % path)
        if not os.path.isfile(path):
            raise ObservationError("%s is not a regular file" % path)
        digest = hashlib.sha256()
        size = 0
        text_parts = []
        matches = []
        with open(path, "rb") as handle:
            for line in handle:
                digest.update(line)
                size += len(line)
                decoded = line.decode("utf-8", "replace").rstrip("\r\n")
                if size <= TEXT_LIMIT:
                    text_parts.append(decoded)
                if len(matches) < MATCH_LIMIT and pattern.search(decoded):
                    matches.append(decoded)
        value = {"exists": True, "size": size, "sha256": digest.hexdigest(), "matches": matches}
        # Small files come back whole for the controller; big ones as digest and matching
        # lines only. The raw output for evidence is always the digest and the matching
        # lines: what decided the test, and nothing else of the file (it may hold secrets).
        value["text"] = "\n".join(text_parts) if size <= TEXT_LIMIT else None
        raw = "sha256 %s, %d bytes; %d line(s) matching /%s/:\n%s" % (
            value["sha256"],
            size,
            len(matches),
            pattern.pattern,
            "\n".join(matches),
        )
        return _observation(
            value, truncate(raw), "host.file_content %s /%s/" % (path, pattern.pattern)
        )

    def m_sysctl(self, args):
        key = str(args.get("key") or "")
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$", key) or ".." in key:
            raise ObservationError("sysctl: bad key %r" % key)
        path = os.path.join(self.paths["proc"], "sys", *key.replace("/", ".").split("."))
        try:
            text = read_text(path)
        except FileNotFoundError:
            return _observation(None, None, "host.sysctl %s (%s does not exist)" % (key, path))
        value = " ".join(text.split())
        return _observation(value, "%s = %s" % (key, value), "host.sysctl %s" % path)

    def _cpuinfo(self):
        text = read_text(os.path.join(self.paths["proc"], "cpuinfo"))
        processors = []
        current = {}
        for line in text.splitlines():
            if not line.strip():
                if current:
                    processors.append(current)
                current = {}
                continue
            name, _, value = line.partition(":")
            current[name.strip()] = value.strip()
        if current:
            processors.append(current)
        return processors

    def m_cpu(self, args):
        processors = self._cached("cpuinfo", self._cpuinfo)
        if not processors:
            raise ObservationError("no processors in %s/cpuinfo" % self.paths["proc"])
        first = processors[0]
        # x86 says "model name"/"flags"; arm64 says "CPU part"/"Features".
        model = (
            first.get("model name")
            or first.get("cpu model")
            or first.get("Processor")
            or first.get("CPU part")
        )
        flags = (first.get("flags") or first.get("Features") or "").split()
        sockets = len(set(p.get("physical id", "0") for p in processors))
        cores = int(first.get("cpu cores", "0") or 0) or None
        value = {
            "model": model,
            "vendor": first.get("vendor_id") or first.get("CPU implementer"),
            "logical": len(processors),
            "sockets": sockets,
            "cores": cores,
            "flags": sorted(set(flags)),
        }
        raw = "\n".join(
            "%s: %s" % (k, first[k])
            for k in ("vendor_id", "model name", "cpu cores", "flags")
            if k in first
        )
        raw += "\nprocessors: %d" % len(processors)
        return _observation(value, raw, "host.cpu %s/cpuinfo" % self.paths["proc"])

    def m_memory(self, args):
        path = os.path.join(self.paths["proc"], "meminfo")
        fields = {}
        for line in read_text(path).splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0])
        if "MemTotal" not in fields:
            raise ObservationError("no MemTotal in %s" % path)
        value = {"total_kb": fields["MemTotal"], "total_mb": fields["MemTotal"] // 1024}
        return _observation(value, "MemTotal: %d kB" % fields["MemTotal"], "host.memory %s" % path)

    def m_dmi(self, args):
        directory = self.paths["dmi"]
        if not os.path.isdir(directory):
            raise ObservationError(
                "no DMI data: %s does not exist (no SMBIOS tables on this machine)" % directory
            )
        value = {}
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not os.path.isfile(path) or name in ("modalias", "uevent"):
                continue
            try:
                value[name] = read_text(path, 4096).strip()
            except OSError:
                value[name] = None  # product_serial and friends are root-only
        raw = "\n".join("%s: %s" % item for item in sorted(value.items()))
        return _observation(value, raw, "host.dmi %s" % directory)

    def _mounts(self):
        mounts = {}
        for line in read_text(os.path.join(self.paths["proc"], "self", "mounts")).splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            target = _unescape_mount(parts[1])
            # Later lines are mounted over earlier ones at the same place.
            mounts[target] = {
                "target": target,
                "source": _unescape_mount(parts[0]),
                "fstype": parts[2],
                "options": parts[3].split(","),
                "line": line,
            }
        return mounts

    def m_mount(self, args):
        path = _absolute(args.get("path"))
        mounts = self._cached("mounts", self._mounts)
        entry = mounts.get(path.rstrip("/") or "/")
        if entry is None:
            return _observation(None, None, "host.mount %s (not a mount point)" % path)
        value = dict((k, entry[k]) for k in ("target", "source", "fstype", "options"))
        return _observation(value, entry["line"], "host.mount /proc/self/mounts %s" % path)

    def _listening(self):
        result = {"tcp": [], "udp": []}
        for protocol in ("tcp", "udp"):
            for suffix, family in (("", socket.AF_INET), ("6", socket.AF_INET6)):
                path = os.path.join(self.paths["proc"], "net", protocol + suffix)
                if os.path.exists(path):
                    result[protocol].extend(parse_proc_net(read_text(path), protocol, family))
        for protocol in result:
            result[protocol] = sorted(result[protocol], key=lambda e: (e["port"], e["address"]))
        return result

    def m_listening(self, args):
        value = self._cached("listening", self._listening)
        raw = "\n".join(
            "%s %s:%d" % (proto, entry["address"], entry["port"])
            for proto in ("tcp", "udp")
            for entry in value[proto]
        )
        return _observation(
            value, truncate(raw) or None, "host.listening /proc/net/{tcp,tcp6,udp,udp6}"
        )

    def _sshd_t(self):
        sshd = self.which("sshd")
        if not sshd:
            raise ObservationError("sshd is not installed (no sshd in %s)" % SEARCH_PATH)
        rc, out, err = self.run([sshd, "-T"])
        if rc != 0:
            raise ObservationError(
                "%s -T failed (rc %d): %s" % (sshd, rc, " ".join(err.split())[:300])
            )
        return sshd, parse_sshd_t(out)

    def m_sshd(self, args):
        key = str(args.get("key") or "").lower()
        sshd, settings = self._cached("sshd", self._sshd_t)
        values = settings.get(key)
        if values is None:
            value = None
            raw = "%s not in sshd -T output" % key
        else:
            value = values[0] if len(values) == 1 else values
            raw = "\n".join("%s %s" % (key, v) for v in values)
        return _observation(value, raw, "host.sshd %s -T" % sshd)

    def m_time_sync(self, args):
        chronyc = self.which("chronyc")
        if chronyc:
            rc, out, err = self.run([chronyc, "-n", "tracking"])
            if rc == 0:
                fields = parse_chronyc_tracking(out)
                leap = fields.get("Leap status", "")
                value = {
                    "synchronised": bool(leap) and leap != "Not synchronised",
                    "source": fields.get("Reference ID"),
                    "daemon": "chronyd",
                }
                return _observation(
                    value, truncate(out.strip()), "host.time_sync chronyc -n tracking"
                )
            chrony_error = " ".join((err or out).split())[:200]
        else:
            chrony_error = None
        timedatectl = self.which("timedatectl")
        if timedatectl and os.path.isdir(self.paths["systemd_run"]):
            rc, out, err = self.run(
                [timedatectl, "show", "--property=NTPSynchronized", "--property=NTP"]
            )
            if rc == 0:
                props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
                # The server is known only while systemd-timesyncd runs; else it stays None.
                source = None
                rc2, out2, _ = self.run([timedatectl, "show-timesync", "--property=ServerName"])
                if rc2 == 0 and "=" in out2:
                    source = out2.strip().split("=", 1)[1] or None
                value = {
                    "synchronised": props.get("NTPSynchronized") == "yes",
                    "source": source,
                    "daemon": "systemd-timesyncd" if props.get("NTP") == "yes" else None,
                }
                return _observation(value, out.strip(), "host.time_sync timedatectl show")
        ntpq = self.which("ntpq")
        if ntpq:
            rc, out, err = self.run([ntpq, "-pn"])
            if rc == 0:
                peer = next(
                    (line.split()[0][1:] for line in out.splitlines() if line.startswith("*")), None
                )
                value = {"synchronised": peer is not None, "source": peer, "daemon": "ntpd"}
                return _observation(value, truncate(out.strip()), "host.time_sync ntpq -pn")
        # No daemon answered: the kernel still knows whether anyone disciplines the clock.
        state = _kernel_clock_state()
        note = "no time daemon answered (chronyc: %s)" % (chrony_error or "not installed")
        if state is None:
            raise ObservationError(note + "; kernel clock state unavailable")
        value = {"synchronised": state == "synchronised", "source": None, "daemon": None}
        return _observation(
            value,
            "%s; kernel clock state: %s" % (note, state),
            "host.time_sync adjtimex (kernel clock state)",
        )

    def m_dns(self, args):
        name = str(args.get("name") or "")
        if not name:
            raise ObservationError("dns: name is required")
        box = {}

        def resolve():
            try:
                box["value"] = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                box["error"] = exc

        worker = threading.Thread(target=resolve, daemon=True)
        worker.start()
        worker.join(self.command_timeout)
        if worker.is_alive():
            raise ObservationError(
                "resolving %s timed out after %ss" % (name, self.command_timeout)
            )
        if "error" in box:
            # Not resolving is the observation (a fail), not a probe error.
            return _observation(
                [], "getaddrinfo(%s): %s" % (name, box["error"]), "host.dns getaddrinfo"
            )
        addresses = sorted(set(info[4][0] for info in box["value"]))
        return _observation(
            addresses, "%s -> %s" % (name, " ".join(addresses)), "host.dns getaddrinfo"
        )

    def m_user(self, args):
        name = str(args.get("name") or "")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return _observation(None, "no user %s" % name, "host.user getpwnam")
        value = {
            "name": entry.pw_name,
            "uid": entry.pw_uid,
            "gid": entry.pw_gid,
            "home": entry.pw_dir,
            "shell": entry.pw_shell,
        }
        raw = "%s:x:%d:%d::%s:%s" % (
            entry.pw_name,
            entry.pw_uid,
            entry.pw_gid,
            entry.pw_dir,
            entry.pw_shell,
        )
        return _observation(value, raw, "host.user getpwnam")

    def m_group(self, args):
        name = str(args.get("name") or "")
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            return _observation(None, "no group %s" % name, "host.group getgrnam")
        primary = self._cached("passwd", lambda: [(p.pw_name, p.pw_gid) for p in pwd.getpwall()])
        members = set(entry.gr_mem) | set(user for user, gid in primary if gid == entry.gr_gid)
        value = {"name": entry.gr_name, "gid": entry.gr_gid, "members": sorted(members)}
        raw = "%s:x:%d:%s" % (entry.gr_name, entry.gr_gid, ",".join(entry.gr_mem))
        return _observation(value, raw, "host.group getgrnam")

    def m_kernel_module(self, args):
        name = str(args.get("name") or "").replace("-", "_")
        if not re.match(r"^[A-Za-z0-9_]+$", name):
            raise ObservationError("kernel_module: bad module name %r" % name)
        modules_path = os.path.join(self.paths["proc"], "modules")
        if os.path.exists(modules_path):
            loaded = self._cached("modules", lambda: read_text(modules_path))
            for line in loaded.splitlines():
                if line.split(" ", 1)[0] == name:
                    return _observation(
                        {"loaded": True, "state": "loaded"},
                        line,
                        "host.kernel_module %s" % modules_path,
                    )
        # Built-in modules have a /sys/module entry (when they have parameters) but no initstate.
        sys_path = os.path.join(self.paths["sys_module"], name)
        if os.path.isdir(sys_path) and not os.path.exists(os.path.join(sys_path, "initstate")):
            return _observation(
                {"loaded": True, "state": "builtin"},
                "%s present, no initstate" % sys_path,
                "host.kernel_module %s" % self.paths["sys_module"],
            )
        where = modules_path if os.path.exists(modules_path) else self.paths["sys_module"]
        return _observation(
            {"loaded": False, "state": "absent"},
            "%s not in %s" % (name, where),
            "host.kernel_module %s" % where,
        )

    def m_libvirt_config(self, args):
        path = _absolute(args.get("path"))
        key = str(args.get("key") or "")

        def load():
            try:
                text = read_text(path)
            except FileNotFoundError:
                raise ObservationError("libvirt configuration %s does not exist" % path) from None
            try:
                return parse_libvirt_conf(text), text
            except ValueError as exc:
                raise ObservationError("cannot parse %s: %s" % (path, exc)) from None

        settings, text = self._cached("libvirt:" + path, load)
        if key in settings:
            if SECRET_KEY.search(key):
                # vnc_password and the like: whether it is set is observable, its value never.
                return _observation(
                    {"found": True, "value": REDACTED},
                    "%s = %s" % (key, REDACTED),
                    "host.libvirt_config %s" % path,
                )
            assignment = re.compile(r"\s*%s\s*=" % re.escape(key))
            line = next((row for row in text.splitlines() if assignment.match(row)), None)
            return _observation(
                {"found": True, "value": settings[key]}, line, "host.libvirt_config %s" % path
            )
        return _observation(
            {"found": False, "value": None},
            "%s not set in %s" % (key, path),
            "host.libvirt_config %s" % path,
        )

    def m_command(self, args):
        argv = args.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ObservationError("command: argv must be a non-empty list of strings")
        program = argv[0] if "/" in argv[0] else self.which(argv[0])
        if not program:
            raise ObservationError("command not found: %s" % argv[0])
        timeout = args.get("timeout") or self.command_timeout
        rc, out, err = self.run([program] + argv[1:], timeout=timeout)
        value = {"rc": rc, "stdout": truncate(out, TEXT_LIMIT), "stderr": truncate(err, RAW_LIMIT)}
        raw = "$ %s\n(rc %d)\n%s%s" % (
            " ".join(argv),
            rc,
            out,
            ("\n[stderr]\n" + err) if err else "",
        )
        return _observation(value, truncate(raw), "host.command %s" % " ".join(argv))

    # --- fingerprint (Master-VM baseline, clones, drift) -----------------------------------

    def m_fingerprint(self, args):
        """The guest part of a fingerprint (docs/formats.md, "Fingerprint").

        Args (all optional): ``files`` paths or globs (``**`` recurses) whose regular files
        are digested (others give type, mode and owner); ``services`` names to report when no
        systemd runs; ``security_keys`` the ``sshd -T`` keys to keep; ``root`` another root
        directory to read (a mounted or extracted image: no commands run then);
        ``max_files`` (default 10000) and ``max_file_mib`` (default 64) limits: beyond them
        the observation is an error, so nothing is left out silently.
        """
        root = str(args.get("root") or "/")
        if not root.startswith("/") or not os.path.isdir(root):
            raise ObservationError("fingerprint: root %r is not a directory" % root)
        live = os.path.realpath(root) == "/"
        max_files = int(args.get("max_files") or FINGERPRINT_MAX_FILES)
        max_bytes = int(args.get("max_file_mib") or FINGERPRINT_MAX_FILE_MIB) << 20
        patterns = args.get("files")
        if patterns is None:
            patterns = list(FINGERPRINT_FILES)
        keys = args.get("security_keys")
        if keys is None:
            keys = list(FINGERPRINT_SSHD_KEYS)

        def at(path):
            return os.path.join(root, path.lstrip("/"))

        os_release = {}
        for path in ("/etc/os-release", "/usr/lib/os-release"):
            if os.path.isfile(at(path)):
                os_release = parse_os_release(read_text(at(path)))
                break
        if live:
            info = os.uname()
            kernel = {"release": info.release, "version": info.version, "machine": info.machine}
        else:
            modules = at("/lib/modules")
            kernel = {"modules": sorted(os.listdir(modules)) if os.path.isdir(modules) else []}
        status = at(self.paths["dpkg_status"]) if not live else self.paths["dpkg_status"]
        if os.path.isfile(status):
            packages = parse_dpkg_status(read_text(status))
            package_source = "dpkg %s" % status
        elif live and self.which("rpm"):
            packages = self._cached("rpm", self._rpm)
            package_source = "rpm -qa"
        else:
            packages = {}
            package_source = "none"
        users = _read_passwd(at("/etc/passwd"))
        groups = _read_group(at("/etc/group"))
        names = dict((u["uid"], u["name"]) for u in users)
        group_names = dict((g["gid"], g["name"]) for g in groups)
        files = _digest_files(root, patterns, max_files, max_bytes, names, group_names)
        services = self._fingerprint_services(live, args.get("services") or [])
        security = {}
        security_source = "none"
        if live and keys:
            try:
                _sshd, settings = self._cached("sshd", self._sshd_t)
                security = dict(
                    ("sshd." + key, " ".join(settings[key]) if key in settings else None)
                    for key in keys
                )
                security_source = "sshd -T"
            except ObservationError as exc:
                security = {"sshd": "not observed: %s" % exc}
        machine_id = _first_line(at("/etc/machine-id"))
        host_keys = sorted(
            name for name in _listdir(at("/etc/ssh"))
            if name.startswith("ssh_host_") and name.endswith("_key")
        )
        identity = {
            "hostname": socket.gethostname() if live else _first_line(at("/etc/hostname")),
            "machine_id": machine_id,
            "macs": _macs() if live else [],
            "addresses": self._addresses() if live else [],
            "ssh_host_keys": _host_key_fingerprints(at("/etc/ssh")),
        }
        generalised = {
            "machine_id_empty": machine_id in (None, "", "uninitialized"),
            "ssh_host_keys": host_keys,
            "persistent_net_rules": os.path.exists(at("/etc/udev/rules.d/70-persistent-net.rules")),
        }
        value = {
            "guest": {
                "os_release": os_release,
                "kernel": kernel,
                "packages": packages,
                "services": services,
                "users": users,
                "groups": groups,
                "files": files,
                "security": security,
            },
            "identity": identity,
            "generalised": generalised,
        }
        raw = "\n".join(
            [
                "root %s" % root,
                "packages %d (%s)" % (len(packages), package_source),
                "files %d of %s" % (len(files), " ".join(patterns)),
                "users %d, groups %d, services %d" % (len(users), len(groups), len(services)),
                "security %d (%s)" % (len(security), security_source),
                "machine-id %s, ssh host keys %d"
                % ("empty" if generalised["machine_id_empty"] else "set", len(host_keys)),
            ]
        )
        return _observation(value, raw, "host.fingerprint root=%s" % root)

    def _fingerprint_services(self, live, names):
        if not live:
            return {}
        systemctl = self.which("systemctl")
        if systemctl and os.path.isdir(self.paths["systemd_run"]):
            rc, out, err = self.run(
                [systemctl, "list-units", "--type=service", "--all", "--no-legend",
                 "--no-pager", "--plain"]
            )
            if rc != 0:
                raise ObservationError("systemctl list-units failed (rc %d): %s" % (rc, err.strip()[:200]))
            services = {}
            for line in out.splitlines():
                parts = line.split()
                if len(parts) >= 4 and parts[0].endswith(".service"):
                    services[parts[0][: -len(".service")]] = "%s/%s" % (parts[2], parts[3])
            return services
        # No service manager (busybox init): what runs is what the named processes say.
        return dict(
            (str(name), "running" if self._matching_processes(name=str(name)) else "stopped")
            for name in names
        )

    def _addresses(self):
        ip = self.which("ip")
        if not ip:
            return []
        rc, out, _err = self.run([ip, "-o", "addr", "show"])
        if rc != 0:
            return []
        found = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] in ("inet", "inet6") and parts[1] != "lo":
                found.add(parts[3])
        return sorted(found)


def _observation(value=None, raw=None, method="", error=None, not_executed=None):
    return {
        "value": value,
        "raw": raw,
        "method": method,
        "error": error,
        "not_executed": not_executed,
    }


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _absolute(path):
    if not isinstance(path, str) or not path.startswith("/"):
        raise ObservationError("path must be absolute, got %r" % (path,))
    return path


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _unescape_mount(text):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (64-bit Linux); only modes and status are read, the
    # padding keeps the kernel from writing past the end.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_byte * 256),
    ]


def _kernel_clock_state():
    """``synchronised``/``unsynchronised`` from adjtimex(2) with no modes set (read-only)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    # TIME_ERROR (5) means the clock is not synchronised (STA_UNSYNC set).
    return "unsynchronised" if state == 5 else "synchronised"


# --- fingerprint helpers -----------------------------------------------------------------

FINGERPRINT_MAX_FILES = 10000
FINGERPRINT_MAX_FILE_MIB = 64
#: Key files of a Linux guest digested when the request names none.
FINGERPRINT_FILES = (
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/fstab",
    "/etc/os-release",
    "/etc/ssh/sshd_config",
    "/etc/sudoers",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/*",
)
#: ``sshd -T`` settings recorded as security settings when the request names none.
FINGERPRINT_SSHD_KEYS = (
    "permitrootlogin",
    "passwordauthentication",
    "pubkeyauthentication",
    "permitemptypasswords",
    "kbdinteractiveauthentication",
    "x11forwarding",
    "allowtcpforwarding",
    "maxauthtries",
    "ciphers",
    "macs",
    "kexalgorithms",
)


def _first_line(path):
    try:
        return read_text(path, 4096).strip().split("\n", 1)[0].strip()
    except OSError:
        return None


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _read_passwd(path):
    users = []
    try:
        text = read_text(path)
    except OSError:
        return users
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and parts[0] and parts[2].isdigit() and parts[3].isdigit():
            users.append(
                {"name": parts[0], "uid": int(parts[2]), "gid": int(parts[3]),
                 "home": parts[5], "shell": parts[6]}
            )
    return sorted(users, key=lambda u: u["name"])


def _read_group(path):
    groups = []
    try:
        text = read_text(path)
    except OSError:
        return groups
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0] and parts[2].isdigit():
            members = sorted(m for m in parts[3].split(",") if m)
            groups.append({"name": parts[0], "gid": int(parts[2]), "members": members})
    return sorted(groups, key=lambda g: g["name"])


def _digest_files(root, patterns, max_files, max_bytes, users, groups):
    """``{path: {type, mode, owner[, sha256]}}`` for every path the patterns match."""
    import glob

    base = os.path.realpath(root)
    paths = set()
    for pattern in patterns:
        pattern = str(pattern)
        if not pattern.startswith("/"):
            raise ObservationError("fingerprint: file pattern must be absolute, got %r" % pattern)
        full = os.path.join(base, pattern.lstrip("/"))
        for found in glob.glob(full, recursive=True):
            rel = "/" + os.path.relpath(found, base) if base != "/" else found
            paths.add(os.path.normpath(rel))
            if len(paths) > max_files:
                raise ObservationError(
                    "fingerprint: more than %d files match %s (raise max_files)"
                    % (max_files, " ".join(patterns))
                )
    files = {}
    for path in sorted(paths):
        real = os.path.join(base, path.lstrip("/"))
        try:
            info = os.lstat(real)
        except FileNotFoundError:
            continue
        kind = next((label for test, label in _FILE_TYPES if test(info.st_mode)), "other")
        entry = {
            "type": kind,
            "mode": "%04o" % stat.S_IMODE(info.st_mode),
            "owner": "%s:%s" % (users.get(info.st_uid, info.st_uid), groups.get(info.st_gid, info.st_gid)),
        }
        if kind == "file":
            if info.st_size > max_bytes:
                raise ObservationError(
                    "fingerprint: %s is %d bytes, above max_file_mib" % (path, info.st_size)
                )
            entry["sha256"] = _sha256(real)
        elif kind == "link":
            entry["target"] = os.readlink(real)
        files[path] = entry
    return files


def _macs():
    macs = []
    for name in _listdir("/sys/class/net"):
        if name == "lo":
            continue
        mac = _first_line("/sys/class/net/%s/address" % name)
        if mac:
            macs.append(mac)
    return sorted(macs)


def _host_key_fingerprints(ssh_dir):
    """``ssh-keygen -l`` style SHA256 fingerprints of the host's public keys."""
    import base64

    found = []
    for name in sorted(_listdir(ssh_dir)):
        if not (name.startswith("ssh_host_") and name.endswith("_key.pub")):
            continue
        line = _first_line(os.path.join(ssh_dir, name)) or ""
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            blob = base64.b64decode(parts[1])
        except ValueError:
            continue
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
        found.append("%s SHA256:%s" % (parts[0], digest))
    return found


def fingerprint_image(image, args=None, debugfs=None, timeout=120):
    """The ``fingerprint`` observation of a template's ext2/3/4 disk image, read offline.

    The file system is read with ``debugfs -c`` (read-only, nothing mounted, nothing
    booted): ``/etc``, the dpkg status file, ``/usr/lib/os-release`` and the top
    directories of the requested file patterns are extracted into a temporary directory,
    fingerprinted as a root (``m_fingerprint``), and removed. With ``disk_digest`` the
    SHA-256 of the whole image is added as ``disk_sha256``. Never raises: failures become
    the observation's ``error``.
    """
    import shutil as _shutil
    import tempfile

    args = dict(args or {})
    method = "image.fingerprint debugfs -c %s" % image
    if not isinstance(image, str) or not image.startswith("/") or not os.path.isfile(image):
        return _observation(error="template image %r is not a file" % (image,), method=method)
    tool = debugfs or shutil.which("debugfs", path=SEARCH_PATH)
    if not tool:
        return _observation(error="debugfs is not installed (e2fsprogs)", method=method)
    observer = HostObserver(command_timeout=timeout)
    work = tempfile.mkdtemp(prefix="vqual-image-")
    try:
        tops = set(["/etc"])
        for pattern in args.get("files") or []:
            head = []
            for part in str(pattern).strip("/").split("/"):
                if any(c in part for c in "*?["):
                    break
                head.append(part)
            if head:
                tops.add("/" + "/".join(head))
        # A directory inside another one comes with it (rdump refuses an existing target).
        tops = [t for t in tops if not any(t.startswith(o + "/") for o in tops)]
        commands = []
        for top in sorted(tops):
            parent = os.path.join(work, os.path.dirname(top).lstrip("/"))
            if not os.path.isdir(parent):
                os.makedirs(parent)
            commands.append('rdump "%s" "%s"' % (top, parent))
        for single in ("/var/lib/dpkg/status", "/usr/lib/os-release"):
            target = os.path.join(work, single.lstrip("/"))
            if not os.path.isdir(os.path.dirname(target)):
                os.makedirs(os.path.dirname(target))
            commands.append('dump -p "%s" "%s"' % (single, target))
        script = os.path.join(work, ".debugfs-commands")
        with open(script, "w") as handle:
            handle.write("\n".join(commands) + "\n")
        rc, _out, err = observer.run([tool, "-c", "-f", script, image])
        os.unlink(script)
        if rc != 0:
            return _observation(
                error="debugfs failed (rc %d): %s" % (rc, " ".join(err.split())[:300]),
                method=method,
            )
        args["root"] = work
        args["security_keys"] = []
        args.pop("services", None)
        found = observer.m_fingerprint(args)
        value = found["value"]
        # Paths are the image's own, not the temporary directory's.
        if args.get("disk_digest"):
            value["disk_sha256"] = _sha256(image)
        value["image"] = image
        raw = "image %s\n%s" % (image, found["raw"].replace(work, "<image>"))
        return _observation(value, raw, method)
    except ObservationError as exc:
        return _observation(error=str(exc).replace(work, "<image>"), method=method)
    except Exception as exc:  # one bad image never ends the run with a traceback
        return _observation(error="%s: %s" % (type(exc).__name__, exc), method=method)
    finally:
        _shutil.rmtree(work, ignore_errors=True)
