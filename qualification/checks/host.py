"""Check types for a Linux host, answered by the target-side module ``host_probe``.

Each check type turns its parameters into one request to probe ``host`` and reads the value
the probe returned (see ``plugins/module_utils/host_observations.py`` for what each method
returns). Requests that several tests share (the CPU, the package database, ``sshd -T``) are
made with the same arguments, so the controller observes them once per host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from qualification.checks.base import ProbeRequest
from qualification.checks.registry import register

# A parameter rule: (name, accepted types, required).
Param = tuple[str, tuple[type, ...], bool]

_STR = (str,)
_INT = (int,)
_LIST = (list, tuple)


def _str_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(v, str) and v for v in value)
    )


@dataclass
class HostCheck:
    """A host check type: parameter rules, the probe method and how to read its value.

    Not frozen: the :class:`Check` protocol declares plain (settable) attributes.

    Attributes:
        name: the check type used in specs.
        description: one line for docs and ``vqual`` listings.
        method: the ``host_probe`` method that answers it.
        params: parameter rules; unknown parameters are refused.
        args: the probe arguments from the test's parameters (defaults to no arguments, so
            every test of this type shares one observation).
        reader: the observed value from the probe's value and the parameters.
        extra: a further validation returning an error text, or None.
    """

    name: str
    description: str
    method: str
    params: tuple[Param, ...] = ()
    args: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda p: {})
    reader: Callable[[Any, Mapping[str, Any]], Any] = field(default=lambda v, p: v)
    extra: Callable[[Mapping[str, Any]], str | None] = field(default=lambda p: None)

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        allowed = {name for name, _, _ in self.params}
        unknown = sorted(set(params) - allowed)
        if unknown:
            return f"{self.name}: unknown parameter(s) {', '.join(unknown)}" + (
                f" (allowed: {', '.join(sorted(allowed))})" if allowed else " (takes none)"
            )
        for name, types, required in self.params:
            if name not in params:
                if required:
                    return f"{self.name}: parameter {name} is required"
                continue
            value = params[name]
            if isinstance(value, bool) and bool not in types:
                return f"{self.name}: parameter {name} must be {_type_names(types)}"
            if not isinstance(value, types):
                return f"{self.name}: parameter {name} must be {_type_names(types)}"
            if isinstance(value, str) and not value:
                return f"{self.name}: parameter {name} must not be empty"
        problem = self.extra(params)
        if problem and not problem.startswith(f"{self.name}:"):
            problem = f"{self.name}: {problem}"
        return problem

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("host", self.method, self.args(params))

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return self.reader(value, params)


def _type_names(types: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        bool: "a boolean",
        list: "a list",
        tuple: "a list",
        dict: "a mapping",
        float: "a number",
    }
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _field(value: Any, params: Mapping[str, Any], key: str = "field") -> Any:
    if value is None:
        return None
    return value.get(params[key]) if isinstance(value, Mapping) else None


def _one_of(name: str, options: tuple[str, ...]) -> Callable[[Mapping[str, Any]], str | None]:
    def check(params: Mapping[str, Any]) -> str | None:
        if name in params and params[name] not in options:
            return f"parameter {name} must be one of {', '.join(options)}"
        return None

    return check


def _regex_param(*names: str) -> Callable[[Mapping[str, Any]], str | None]:
    def check(params: Mapping[str, Any]) -> str | None:
        for name in names:
            if name in params:
                try:
                    re.compile(params[name])
                except re.error as exc:
                    return f"parameter {name} is not a valid regular expression: {exc}"
        return None

    return check


def _all(
    *checks: Callable[[Mapping[str, Any]], str | None],
) -> Callable[[Mapping[str, Any]], str | None]:
    def check(params: Mapping[str, Any]) -> str | None:
        for one in checks:
            error = one(params)
            if error:
                return error
        return None

    return check


def _absolute(name: str) -> Callable[[Mapping[str, Any]], str | None]:
    def check(params: Mapping[str, Any]) -> str | None:
        value = params.get(name)
        if isinstance(value, str) and not value.startswith("/"):
            return f"parameter {name} must be an absolute path"
        return None

    return check


# --- readers -------------------------------------------------------------------------------


def _read_package_version(value: Any, params: Mapping[str, Any]) -> Any:
    versions = value or {}
    return versions.get(params["name"])


def _read_packages_installed(value: Any, params: Mapping[str, Any]) -> Any:
    """True when every named package is installed; the missing ones otherwise (a list)."""
    versions = value or {}
    missing = [name for name in params["names"] if versions.get(name) is None]
    return True if not missing else {"missing": missing}


def _read_processes(value: Any, params: Mapping[str, Any]) -> Any:
    processes = value or []
    if params.get("result", "count") == "running":
        return bool(processes)
    return len(processes)


def _read_service(value: Any, params: Mapping[str, Any]) -> Any:
    return None if value is None else value.get(params.get("result", "active"))


def _read_file(key: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    def read(value: Any, params: Mapping[str, Any]) -> Any:
        if not value or not value.get("exists"):
            return None
        return value.get(key)

    return read


def _read_file_exists(value: Any, params: Mapping[str, Any]) -> Any:
    if not value or not value.get("exists"):
        return False
    wanted = params.get("type")
    return True if wanted is None else value.get("type") == wanted


def _read_file_owner(value: Any, params: Mapping[str, Any]) -> Any:
    if not value or not value.get("exists"):
        return None
    return f"{value.get('owner')}:{value.get('group')}"


def _read_file_content(value: Any, params: Mapping[str, Any]) -> Any:
    """Matching lines (list), whether any line matched (bool) or how many did (int)."""
    if not value or not value.get("exists"):
        return None
    if "text" in value and value["text"] is not None:
        pattern = _content_pattern(params)
        lines = [line for line in value["text"].splitlines() if re.search(pattern, line)]
    else:
        lines = list(value.get("matches") or [])
    result = params.get("result", "lines")
    if result == "found":
        return bool(lines)
    if result == "count":
        return len(lines)
    return lines


def _content_pattern(params: Mapping[str, Any]) -> str:
    return str(params["regex"]) if "regex" in params else re.escape(str(params["contains"]))


def _content_one(params: Mapping[str, Any]) -> str | None:
    if ("regex" in params) == ("contains" in params):
        return "file_content: give exactly one of regex, contains"
    return None


def _read_cpu_flags(value: Any, params: Mapping[str, Any]) -> Any:
    flags = sorted((value or {}).get("flags") or [])
    wanted = params.get("flags")
    if wanted:
        return sorted(f for f in wanted if f in flags)
    return flags


def _read_mount(value: Any, params: Mapping[str, Any]) -> Any:
    if value is None:
        return None
    return value.get(params.get("field", "fstype"))


def _read_listening(value: Any, params: Mapping[str, Any]) -> Any:
    sockets = (value or {}).get(params.get("protocol", "tcp")) or []
    port = params.get("port")
    if port is not None:
        return any(entry.get("port") == port for entry in sockets)
    return sorted({int(entry["port"]) for entry in sockets})


def _read_sshd(value: Any, params: Mapping[str, Any]) -> Any:
    return value


def _read_time_sync(value: Any, params: Mapping[str, Any]) -> Any:
    return None if value is None else value.get(params.get("field", "synchronised"))


def _read_dns(value: Any, params: Mapping[str, Any]) -> Any:
    return sorted(value or [])


def _read_user(value: Any, params: Mapping[str, Any]) -> Any:
    return value is not None


def _read_user_shell(value: Any, params: Mapping[str, Any]) -> Any:
    return None if value is None else value.get("shell")


def _read_group_members(value: Any, params: Mapping[str, Any]) -> Any:
    return None if value is None else sorted(value.get("members") or [])


def _read_module(value: Any, params: Mapping[str, Any]) -> Any:
    return bool(value and value.get("loaded"))


def _read_libvirt_config(value: Any, params: Mapping[str, Any]) -> Any:
    """The configured value; else the documented default given in params; else None."""
    if value and value.get("found"):
        return value.get("value")
    return params.get("default")


def _read_command(value: Any, params: Mapping[str, Any]) -> Any:
    if value is None:
        return None
    result = params.get("result", "stdout")
    if result in ("stdout", "stderr"):
        return str(value.get(result) or "").strip()
    return value.get("rc")


_LIBVIRT_FILES = {
    "libvirtd.conf": "/etc/libvirt/libvirtd.conf",
    "qemu.conf": "/etc/libvirt/qemu.conf",
    "virtqemud.conf": "/etc/libvirt/virtqemud.conf",
    "virtproxyd.conf": "/etc/libvirt/virtproxyd.conf",
}


def _libvirt_path(params: Mapping[str, Any]) -> str:
    name = str(params["file"])
    return _LIBVIRT_FILES.get(name, name)


def _libvirt_file(params: Mapping[str, Any]) -> str | None:
    name = params.get("file")
    if isinstance(name, str) and name not in _LIBVIRT_FILES and not name.startswith("/"):
        return f"parameter file must be one of {', '.join(_LIBVIRT_FILES)} or an absolute path"
    return None


def _argv_ok(params: Mapping[str, Any]) -> str | None:
    argv = params.get("argv")
    if argv is not None and not _str_list(argv):
        return "command_output: argv must be a non-empty list of strings"
    return None


def _names_ok(params: Mapping[str, Any]) -> str | None:
    names = params.get("names")
    if names is not None and not _str_list(names):
        return "packages_installed: names must be a non-empty list of strings"
    return None


def _process_ok(params: Mapping[str, Any]) -> str | None:
    if "name" not in params and "cmdline" not in params:
        return "process_running: give name or cmdline (or both)"
    return _all(_regex_param("cmdline"), _one_of("result", ("count", "running")))(params)


def _port_ok(params: Mapping[str, Any]) -> str | None:
    port = params.get("port")
    if port is not None and not 0 < int(port) < 65536:
        return "listening_ports: port must be 1-65535"
    return _one_of("protocol", ("tcp", "udp"))(params)


def _flags_ok(params: Mapping[str, Any]) -> str | None:
    flags = params.get("flags")
    if flags is not None and not _str_list(flags):
        return "cpu_flags: flags must be a non-empty list of strings"
    return None


CHECKS: tuple[HostCheck, ...] = (
    HostCheck(
        "os_release",
        "A field of /etc/os-release (ID, VERSION_ID, PRETTY_NAME, ...)",
        "os_release",
        (("field", _STR, True),),
        reader=_field,
    ),
    HostCheck(
        "kernel_release",
        "The running kernel release (uname -r)",
        "kernel",
        reader=lambda v, p: None if v is None else v.get("release"),
    ),
    HostCheck(
        "package_version",
        "Installed version of a package; None when not installed",
        "packages",
        (("name", _STR, True),),
        args=lambda p: {"names": [p["name"]]},
        reader=_read_package_version,
    ),
    HostCheck(
        "packages_installed",
        "True when all named packages are installed, else the missing ones",
        "packages",
        (("names", _LIST, True),),
        args=lambda p: {"names": sorted(p["names"])},
        reader=_read_packages_installed,
        extra=_names_ok,
    ),
    HostCheck(
        "process_running",
        "Processes whose name equals `name` and/or whose command line matches `cmdline`: count "
        "(default) or running (bool)",
        "processes",
        (("name", _STR, False), ("cmdline", _STR, False), ("result", _STR, False)),
        args=lambda p: {k: p[k] for k in ("name", "cmdline") if k in p},
        reader=_read_processes,
        extra=_process_ok,
    ),
    HostCheck(
        "service_active",
        "A service is active (systemd where it runs; otherwise a process check, named in method)",
        "service",
        (("name", _STR, True), ("process", _STR, False), ("result", _STR, False)),
        args=lambda p: {k: p[k] for k in ("name", "process") if k in p},
        reader=_read_service,
        extra=_one_of("result", ("active", "enabled")),
    ),
    HostCheck(
        "file_exists",
        "A path exists (optionally of type file, directory, link, socket, ...)",
        "file",
        (("path", _STR, True), ("type", _STR, False)),
        args=lambda p: {"path": p["path"]},
        reader=_read_file_exists,
        extra=_all(
            _absolute("path"),
            _one_of("type", ("file", "directory", "link", "socket", "fifo", "block", "char")),
        ),
    ),
    HostCheck(
        "file_mode",
        'Permission bits of a path as an octal string, e.g. "0644"',
        "file",
        (("path", _STR, True),),
        args=lambda p: {"path": p["path"]},
        reader=_read_file("mode"),
        extra=_absolute("path"),
    ),
    HostCheck(
        "file_owner",
        "Owner of a path as user:group",
        "file",
        (("path", _STR, True),),
        args=lambda p: {"path": p["path"]},
        reader=_read_file_owner,
        extra=_absolute("path"),
    ),
    HostCheck(
        "file_checksum",
        "SHA-256 of a file (hex)",
        "file",
        (("path", _STR, True),),
        args=lambda p: {"path": p["path"], "checksum": True},
        reader=_read_file("sha256"),
        extra=_absolute("path"),
    ),
    HostCheck(
        "file_content",
        "Lines of a text file matching `regex` or containing `contains`: lines (default), "
        "found (bool) or count",
        "file_content",
        (
            ("path", _STR, True),
            ("regex", _STR, False),
            ("contains", _STR, False),
            ("result", _STR, False),
        ),
        args=lambda p: {"path": p["path"], "pattern": _content_pattern(p)},
        reader=_read_file_content,
        extra=_all(
            _content_one,
            _absolute("path"),
            _regex_param("regex"),
            _one_of("result", ("lines", "found", "count")),
        ),
    ),
    HostCheck(
        "sysctl",
        "A kernel parameter from /proc/sys as a string (tabs become spaces)",
        "sysctl",
        (("key", _STR, True),),
        args=lambda p: {"key": p["key"]},
        extra=lambda p: (
            None
            if re.fullmatch(r"[A-Za-z0-9_.\-/*]+", str(p.get("key", "x")))
            and ".." not in str(p.get("key"))
            else "sysctl: key must look like net.ipv4.ip_forward"
        ),
    ),
    HostCheck(
        "cpu_model",
        "CPU model name",
        "cpu",
        reader=lambda v, p: None if v is None else v.get("model"),
    ),
    HostCheck(
        "cpu_count",
        "Logical CPUs (default), sockets or cores per socket",
        "cpu",
        (("field", _STR, False),),
        reader=lambda v, p: None if v is None else v.get(p.get("field", "logical")),
        extra=_one_of("field", ("logical", "sockets", "cores")),
    ),
    HostCheck(
        "cpu_flags",
        "CPU flags (sorted list); with `flags`, those of them present (e.g. vmx, svm)",
        "cpu",
        (("flags", _LIST, False),),
        reader=_read_cpu_flags,
        extra=_flags_ok,
    ),
    HostCheck(
        "memory_total_mb",
        "Total memory in MiB (MemTotal)",
        "memory",
        reader=lambda v, p: None if v is None else v.get("total_mb"),
    ),
    HostCheck(
        "dmi",
        "A DMI/SMBIOS field (sys_vendor, product_name, bios_version, bios_date, ...)",
        "dmi",
        (("field", _STR, True),),
        reader=_field,
        extra=lambda p: (
            None
            if re.fullmatch(r"[a-z0-9_]+", str(p.get("field", "x")))
            else "dmi: field must be a file name under /sys/class/dmi/id"
        ),
    ),
    HostCheck(
        "mount",
        "A mount point's fstype (default), source or options (list); None if not mounted",
        "mount",
        (("path", _STR, True), ("field", _STR, False)),
        args=lambda p: {"path": p["path"]},
        reader=_read_mount,
        extra=_all(_absolute("path"), _one_of("field", ("fstype", "source", "options"))),
    ),
    HostCheck(
        "listening_ports",
        "Listening ports of a protocol (sorted list), or with `port` whether it listens",
        "listening",
        (("protocol", _STR, False), ("port", _INT, False)),
        reader=_read_listening,
        extra=_port_ok,
    ),
    HostCheck(
        "sshd_setting",
        "A setting from `sshd -T` (effective configuration), key in lower case",
        "sshd",
        (("key", _STR, True),),
        args=lambda p: {"key": str(p["key"]).lower()},
        reader=_read_sshd,
    ),
    HostCheck(
        "time_sync",
        "Clock synchronisation: synchronised (bool, default), source or daemon",
        "time_sync",
        (("field", _STR, False),),
        reader=_read_time_sync,
        extra=_one_of("field", ("synchronised", "source", "daemon")),
    ),
    HostCheck(
        "dns_resolves",
        "Addresses a name resolves to (sorted list; empty if it does not)",
        "dns",
        (("name", _STR, True),),
        args=lambda p: {"name": p["name"]},
        reader=_read_dns,
    ),
    HostCheck(
        "user_exists",
        "A user account exists",
        "user",
        (("name", _STR, True),),
        args=lambda p: {"name": p["name"]},
        reader=_read_user,
    ),
    HostCheck(
        "group_exists",
        "A group exists",
        "group",
        (("name", _STR, True),),
        args=lambda p: {"name": p["name"]},
        reader=_read_user,
    ),
    HostCheck(
        "user_shell",
        "A user's login shell; None if no such user",
        "user",
        (("name", _STR, True),),
        args=lambda p: {"name": p["name"]},
        reader=_read_user_shell,
    ),
    HostCheck(
        "group_members",
        "Members of a group (sorted), listed ones and users with it as primary group",
        "group",
        (("name", _STR, True),),
        args=lambda p: {"name": p["name"]},
        reader=_read_group_members,
    ),
    HostCheck(
        "kernel_module_loaded",
        "A kernel module is loaded or built in",
        "kernel_module",
        (("name", _STR, True),),
        args=lambda p: {"name": p["name"]},
        reader=_read_module,
    ),
    HostCheck(
        "libvirt_config",
        "A key of libvirtd.conf, qemu.conf (or another libvirt config path); a missing key "
        "gives `default` if given, else None",
        "libvirt_config",
        (("file", _STR, True), ("key", _STR, True), ("default", (str, int, bool, list), False)),
        args=lambda p: {"path": _libvirt_path(p), "key": p["key"]},
        reader=_read_libvirt_config,
        extra=_libvirt_file,
    ),
    HostCheck(
        "command_output",
        "The escape hatch: stdout (default, stripped), stderr or rc of a read-only command "
        "run without a shell; only for commands that change nothing",
        "command",
        (("argv", _LIST, True), ("result", _STR, False), ("timeout", _INT, False)),
        args=lambda p: {
            "argv": list(p["argv"]),
            **({"timeout": p["timeout"]} if "timeout" in p else {}),
        },
        reader=_read_command,
        extra=_all(_argv_ok, _one_of("result", ("stdout", "stderr", "rc"))),
    ),
)


def _register_all() -> None:
    for check in CHECKS:
        register(check)


_register_all()
