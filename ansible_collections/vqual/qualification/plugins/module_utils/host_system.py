# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

"""Host probe observations of the system itself: OS, kernel, packages, processes, services,
files, sysctl, CPU, memory, DMI, mounts, users and groups, kernel modules, commands.

Each ``observe_<method>(observer, args)`` returns an observation dict; the table of methods
is :data:`~.host_observations.OBSERVATIONS`. Standard library and module_utils only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import hashlib
import os
import pwd
import re
import stat

from ansible_collections.vqual.qualification.plugins.module_utils.host_common import (
    FILE_TYPES,
    MATCH_LIMIT,
    RAW_LIMIT,
    TEXT_LIMIT,
    ObservationError,
    absolute,
    as_tuple,
    group_name,
    matching_processes,
    observation,
    package_db,
    parse_os_release,
    read_text,
    sha256_file,
    truncate,
    unescape_mount,
    user_name,
)


def observe_os_release(observer, args):
    for path in as_tuple(observer.paths["os_release"]):
        if os.path.exists(path):
            text = read_text(path)
            return observation(parse_os_release(text), truncate(text), "host.file %s" % path)
    raise ObservationError(
        "no os-release file (%s)" % ", ".join(as_tuple(observer.paths["os_release"]))
    )


def observe_kernel(observer, args):
    info = os.uname()
    value = {"release": info.release, "version": info.version, "machine": info.machine}
    return observation(
        value, "%s %s %s" % (info.sysname, info.release, info.version), "host.uname"
    )


def observe_packages(observer, args):
    names = [str(name) for name in args.get("names") or []]
    method, packages = package_db(observer)
    value = dict((name, packages.get(name)) for name in names)
    raw = "\n".join("%s %s" % (name, value[name] or "(not installed)") for name in names)
    return observation(value, raw, method)


def observe_processes(observer, args):
    name, cmdline = args.get("name"), args.get("cmdline")
    if not name and not cmdline:
        raise ObservationError("processes: give name or cmdline")
    found = matching_processes(observer, name, cmdline)
    raw = "\n".join("%d %s" % (p["pid"], p["cmdline"] or "[%s]" % p["name"]) for p in found)
    what = " ".join(
        part
        for part in (name and "name=%s" % name, cmdline and "cmdline=/%s/" % cmdline)
        if part
    )
    return observation(found, truncate(raw) or None, "host.processes %s" % what)


def observe_service(observer, args):
    name = str(args["name"])
    unit = name if "." in name else name + ".service"
    systemctl = observer.which("systemctl")
    if systemctl and os.path.isdir(observer.paths["systemd_run"]):
        rc, out, err = observer.run(
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
        return observation(value, out.strip(), "host.service systemctl show %s" % unit)
    process = str(args.get("process") or name)
    found = matching_processes(observer, name=process)
    value = {
        "active": bool(found),
        "enabled": None,
        "state": "running" if found else "no process",
        "manager": "process",
    }
    raw = "\n".join("%d %s" % (p["pid"], p["cmdline"]) for p in found)
    return observation(
        value,
        raw or None,
        "host.service no systemd running: process check for %s (enabled state unknown)"
        % process,
    )


def _stat(path):
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    kind = next((label for test, label in FILE_TYPES if test(info.st_mode)), "other")
    return {
        "exists": True,
        "type": kind,
        "mode": "%04o" % stat.S_IMODE(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
        "owner": user_name(info.st_uid),
        "group": group_name(info.st_gid),
        "size": info.st_size,
        "target": os.readlink(path) if kind == "link" else None,
    }


def observe_file(observer, args):
    path = absolute(args.get("path"))
    value = _stat(path)
    if value is None:
        return observation({"exists": False}, None, "host.file %s" % path)
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
        value["sha256"] = sha256_file(path)
        raw += "\nsha256 %s" % value["sha256"]
    return observation(value, raw, "host.file %s" % path)


def observe_file_content(observer, args):
    path = absolute(args.get("path"))
    pattern = re.compile(str(args.get("pattern") or ""))
    if not os.path.exists(path):
        return observation({"exists": False}, None, "host.file_content %s" % path)
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
    return observation(
        value, truncate(raw), "host.file_content %s /%s/" % (path, pattern.pattern)
    )


def observe_sysctl(observer, args):
    key = str(args.get("key") or "")
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$", key) or ".." in key:
        raise ObservationError("sysctl: bad key %r" % key)
    path = os.path.join(observer.paths["proc"], "sys", *key.replace("/", ".").split("."))
    try:
        text = read_text(path)
    except FileNotFoundError:
        return observation(None, None, "host.sysctl %s (%s does not exist)" % (key, path))
    value = " ".join(text.split())
    return observation(value, "%s = %s" % (key, value), "host.sysctl %s" % path)


def _cpuinfo(observer):
    text = read_text(os.path.join(observer.paths["proc"], "cpuinfo"))
    processors = []
    current = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                processors.append(current)
            current = {}
            continue
        name, _sep, value = line.partition(":")
        current[name.strip()] = value.strip()
    if current:
        processors.append(current)
    return processors


def observe_cpu(observer, args):
    processors = observer.cached("cpuinfo", lambda: _cpuinfo(observer))
    if not processors:
        raise ObservationError("no processors in %s/cpuinfo" % observer.paths["proc"])
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
    return observation(value, raw, "host.cpu %s/cpuinfo" % observer.paths["proc"])


def observe_memory(observer, args):
    path = os.path.join(observer.paths["proc"], "meminfo")
    fields = {}
    for line in read_text(path).splitlines():
        name, _sep, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    if "MemTotal" not in fields:
        raise ObservationError("no MemTotal in %s" % path)
    value = {"total_kb": fields["MemTotal"], "total_mb": fields["MemTotal"] // 1024}
    return observation(value, "MemTotal: %d kB" % fields["MemTotal"], "host.memory %s" % path)


def observe_dmi(observer, args):
    directory = observer.paths["dmi"]
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
    return observation(value, raw, "host.dmi %s" % directory)


def _mounts(observer):
    mounts = {}
    for line in read_text(os.path.join(observer.paths["proc"], "self", "mounts")).splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        target = unescape_mount(parts[1])
        # Later lines are mounted over earlier ones at the same place.
        mounts[target] = {
            "target": target,
            "source": unescape_mount(parts[0]),
            "fstype": parts[2],
            "options": parts[3].split(","),
            "line": line,
        }
    return mounts


def observe_mount(observer, args):
    path = absolute(args.get("path"))
    mounts = observer.cached("mounts", lambda: _mounts(observer))
    entry = mounts.get(path.rstrip("/") or "/")
    if entry is None:
        return observation(None, None, "host.mount %s (not a mount point)" % path)
    value = dict((k, entry[k]) for k in ("target", "source", "fstype", "options"))
    return observation(value, entry["line"], "host.mount /proc/self/mounts %s" % path)


def observe_user(observer, args):
    name = str(args.get("name") or "")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return observation(None, "no user %s" % name, "host.user getpwnam")
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
    return observation(value, raw, "host.user getpwnam")


def observe_group(observer, args):
    name = str(args.get("name") or "")
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return observation(None, "no group %s" % name, "host.group getgrnam")
    primary = observer.cached("passwd", lambda: [(p.pw_name, p.pw_gid) for p in pwd.getpwall()])
    members = set(entry.gr_mem) | set(user for user, gid in primary if gid == entry.gr_gid)
    value = {"name": entry.gr_name, "gid": entry.gr_gid, "members": sorted(members)}
    raw = "%s:x:%d:%s" % (entry.gr_name, entry.gr_gid, ",".join(entry.gr_mem))
    return observation(value, raw, "host.group getgrnam")


def observe_kernel_module(observer, args):
    name = str(args.get("name") or "").replace("-", "_")
    if not re.match(r"^[A-Za-z0-9_]+$", name):
        raise ObservationError("kernel_module: bad module name %r" % name)
    modules_path = os.path.join(observer.paths["proc"], "modules")
    if os.path.exists(modules_path):
        loaded = observer.cached("modules", lambda: read_text(modules_path))
        for line in loaded.splitlines():
            if line.split(" ", 1)[0] == name:
                return observation(
                    {"loaded": True, "state": "loaded"},
                    line,
                    "host.kernel_module %s" % modules_path,
                )
    # Built-in modules have a /sys/module entry (when they have parameters) but no initstate.
    sys_path = os.path.join(observer.paths["sys_module"], name)
    if os.path.isdir(sys_path) and not os.path.exists(os.path.join(sys_path, "initstate")):
        return observation(
            {"loaded": True, "state": "builtin"},
            "%s present, no initstate" % sys_path,
            "host.kernel_module %s" % observer.paths["sys_module"],
        )
    where = modules_path if os.path.exists(modules_path) else observer.paths["sys_module"]
    return observation(
        {"loaded": False, "state": "absent"},
        "%s not in %s" % (name, where),
        "host.kernel_module %s" % where,
    )


def observe_command(observer, args):
    argv = args.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ObservationError("command: argv must be a non-empty list of strings")
    program = argv[0] if "/" in argv[0] else observer.which(argv[0])
    if not program:
        raise ObservationError("command not found: %s" % argv[0])
    timeout = args.get("timeout") or observer.command_timeout
    rc, out, err = observer.run([program] + argv[1:], timeout=timeout)
    value = {"rc": rc, "stdout": truncate(out, TEXT_LIMIT), "stderr": truncate(err, RAW_LIMIT)}
    raw = "$ %s\n(rc %d)\n%s%s" % (
        " ".join(argv),
        rc,
        out,
        ("\n[stderr]\n" + err) if err else "",
    )
    return observation(value, truncate(raw), "host.command %s" % " ".join(argv))
