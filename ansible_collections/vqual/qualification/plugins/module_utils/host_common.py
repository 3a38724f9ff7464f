# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

"""What the host probe's observation modules share: limits, errors, parsers, shared sources.

Standard library only, like every file of the host probe: it is shipped to the target inside
the module payload. The observation functions (``host_system``, ``host_services``,
``host_fingerprint``) take the :class:`~.host_observations.HostObserver` answering the batch
and read the sources several of them need through it once (:func:`package_db`,
:func:`matching_processes`, :func:`sshd_settings`).
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
import socket
import stat

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
    "sys_class_net": "/sys/class/net",
    "sys_block": "/sys/block",
}

# Where the tools live on the distributions vqual targets; PATH is not trusted to hold sbin.
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

FILE_TYPES = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "link"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISCHR, "char"),
)

# /proc/net/tcp state 0A is LISTEN; UDP sockets have no listen state, 07 (CLOSE) is unconnected.
LISTEN_STATES = {"tcp": "0A", "udp": "07"}


class ObservationError(Exception):
    """This observation cannot be made; the message becomes its ``error``."""


def observation(value=None, raw=None, method="", error=None, not_executed=None):
    return {
        "value": value,
        "raw": raw,
        "method": method,
        "error": error,
        "not_executed": not_executed,
    }


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
        name, _sep, value = line.partition("=")
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
    wanted = LISTEN_STATES[protocol]
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != wanted:
            continue
        address, _sep, port = parts[1].partition(":")
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
        key, _sep, value = line.strip().partition(" ")
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


def readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def absolute(path):
    if not isinstance(path, str) or not path.startswith("/"):
        raise ObservationError("path must be absolute, got %r" % (path,))
    return path


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def unescape_mount(text):
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


def kernel_clock_state():
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


# --- sources several observations read, once per batch ------------------------------------


def _dpkg(observer):
    return parse_dpkg_status(read_text(observer.paths["dpkg_status"]))


def rpm_packages(observer):
    rpm = observer.which("rpm")
    rc, out, err = observer.run(
        [rpm, "-qa", "--queryformat", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n"]
    )
    if rc != 0:
        raise ObservationError("rpm -qa failed (rc %d): %s" % (rc, err.strip()[:200]))
    packages = {}
    for line in out.splitlines():
        name, _sep, version = line.partition("\t")
        if version.startswith("0:"):
            version = version[2:]
        packages.setdefault(name, version)
    return packages


def package_db(observer):
    if os.path.exists(observer.paths["dpkg_status"]):
        return "host.packages dpkg %s" % observer.paths["dpkg_status"], observer.cached(
            "dpkg", lambda: _dpkg(observer)
        )
    if observer.which("rpm"):
        return "host.packages rpm -qa", observer.cached("rpm", lambda: rpm_packages(observer))
    raise ObservationError(
        "no package database found (neither %s nor rpm)" % observer.paths["dpkg_status"]
    )


def process_table(observer):
    """Processes that share this probe's root directory.

    A process chrooted elsewhere belongs to another system (a container or a lab host in
    a chroot) and is left out; one whose root cannot be read is kept.
    """
    proc = observer.paths["proc"]
    own_root = readlink(os.path.join(proc, "self", "root"))
    table = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            comm = read_text(os.path.join(proc, entry, "comm")).strip()
            cmdline = read_text(os.path.join(proc, entry, "cmdline")).replace("\0", " ").strip()
        except OSError:
            continue  # the process ended while we looked
        root = readlink(os.path.join(proc, entry, "root"))
        if own_root is not None and root is not None and root != own_root:
            continue
        table.append({"pid": int(entry), "name": comm, "cmdline": cmdline})
    return sorted(table, key=lambda p: p["pid"])


def matching_processes(observer, name=None, cmdline=None):
    table = observer.cached("processes", lambda: process_table(observer))
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


def sshd_settings(observer):
    sshd = observer.which("sshd")
    if not sshd:
        raise ObservationError("sshd is not installed (no sshd in %s)" % SEARCH_PATH)
    rc, out, err = observer.run([sshd, "-T"])
    if rc != 0:
        raise ObservationError(
            "%s -T failed (rc %d): %s" % (sshd, rc, " ".join(err.split())[:300])
        )
    return sshd, parse_sshd_t(out)
