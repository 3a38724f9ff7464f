# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

"""The host probe's ``fingerprint`` observation: the guest part of a Master-VM or clone
fingerprint (docs/formats.md, "Fingerprint"), of the running system or of a root directory
(a mounted or extracted image, where no command runs).

Standard library and module_utils only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import socket
import stat

from ansible_collections.vqual.qualification.plugins.module_utils.host_common import (
    FILE_TYPES,
    ObservationError,
    matching_processes,
    observation,
    parse_dpkg_status,
    parse_os_release,
    read_text,
    rpm_packages,
    sha256_file,
    sshd_settings,
)

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


def observe_fingerprint(observer, args):
    """The guest part of a fingerprint (docs/formats.md, "Fingerprint").

    Args (all optional): ``files`` paths or globs (``**`` recurses) whose regular files
    are digested (others give type, mode and owner); ``services`` names to report when no
    systemd runs; ``security_keys`` the ``sshd -T`` keys to keep; ``root`` another root
    directory to read (a mounted or extracted image: no commands run then);
    ``max_files`` (default 10000) and ``max_file_mib`` (default 64) limits: beyond them
    the observation is an error, so nothing is left out silently; ``default_files`` adds the
    default key files to ``files`` (application data named beside them).
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
    elif args.get("default_files"):
        # the default key files plus the application data the inventory names
        patterns = list(FINGERPRINT_FILES) + list(patterns)
    keys = args.get("security_keys")
    if keys is None:
        keys = list(FINGERPRINT_SSHD_KEYS)

    def at(path):
        return os.path.join(root, path.lstrip("/"))

    os_release, kernel = _os_and_kernel(at, live)
    packages, package_source = _packages(observer, at, live)
    users = _read_passwd(at("/etc/passwd"))
    groups = _read_group(at("/etc/group"))
    names = dict((u["uid"], u["name"]) for u in users)
    group_names = dict((g["gid"], g["name"]) for g in groups)
    files = _digest_files(root, patterns, max_files, max_bytes, names, group_names)
    services = _fingerprint_services(observer, live, args.get("services") or [])
    security, security_source = _security_settings(observer, live, keys)
    machine_id = _first_line(at("/etc/machine-id"))
    host_keys = sorted(
        name
        for name in _listdir(at("/etc/ssh"))
        if name.startswith("ssh_host_") and name.endswith("_key")
    )
    identity = _identity(observer, at, live, machine_id)
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
    return observation(value, raw, "host.fingerprint root=%s" % root)


def _os_and_kernel(at, live):
    """os-release fields, and the running kernel (live) or the kernels installed (a root)."""
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
    return os_release, kernel


def _packages(observer, at, live):
    """Installed packages and where they were read: dpkg's status file, else (live) rpm."""
    status = at(observer.paths["dpkg_status"]) if not live else observer.paths["dpkg_status"]
    if os.path.isfile(status):
        return parse_dpkg_status(read_text(status)), "dpkg %s" % status
    if live and observer.which("rpm"):
        return observer.cached("rpm", lambda: rpm_packages(observer)), "rpm -qa"
    return {}, "none"


def _security_settings(observer, live, keys):
    """The ``sshd -T`` settings named by ``keys`` (live only) and where they were read."""
    if not (live and keys):
        return {}, "none"
    try:
        _sshd, settings = observer.cached("sshd", lambda: sshd_settings(observer))
    except ObservationError as exc:
        return {"sshd": "not observed: %s" % exc}, "none"
    security = dict(
        ("sshd." + key, " ".join(settings[key]) if key in settings else None) for key in keys
    )
    return security, "sshd -T"


def _identity(observer, at, live, machine_id):
    """What makes the guest this one: a clone must differ from its master in each of these."""
    return {
        "hostname": socket.gethostname() if live else _first_line(at("/etc/hostname")),
        "machine_id": machine_id,
        "macs": _macs() if live else [],
        "addresses": _addresses(observer) if live else [],
        "ssh_host_keys": _host_key_fingerprints(at("/etc/ssh")),
    }


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
        kind = next((label for test, label in FILE_TYPES if test(info.st_mode)), "other")
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
            entry["sha256"] = sha256_file(real)
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


def _fingerprint_services(observer, live, names):
    if not live:
        return {}
    systemctl = observer.which("systemctl")
    if systemctl and os.path.isdir(observer.paths["systemd_run"]):
        rc, out, err = observer.run(
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
        (str(name), "running" if matching_processes(observer, name=str(name)) else "stopped")
        for name in names
    )


def _addresses(observer):
    ip = observer.which("ip")
    if not ip:
        return []
    rc, out, _err = observer.run([ip, "-o", "addr", "show"])
    if rc != 0:
        return []
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("inet", "inet6") and parts[1] != "lo":
            found.add(parts[3])
    return sorted(found)
