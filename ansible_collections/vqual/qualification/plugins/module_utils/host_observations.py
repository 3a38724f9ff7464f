# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

"""Target-side observations of a Linux host, shared by the host probe module.

Standard library and module_utils only: these files are shipped to the target inside the
module payload. A :class:`HostObserver` answers a batch of requests ``{key, method, args}``
with observations ``{value, raw, method, error, not_executed, seconds}``, each method looked up in
:data:`OBSERVATIONS` (the observations themselves are in ``host_system``, ``host_services``
and ``host_fingerprint``; what they share in ``host_common``). It reads files directly
instead of forking where it can, reads each shared source once per batch (the package
database, /proc/net/*, ``sshd -T``, the process table), runs commands as argv lists without a
shell and with a timeout, and turns a failure of one observation into that observation's
``error``. Nothing here writes to the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import time
from typing import Any, Callable, Dict

from ansible_collections.vqual.qualification.plugins.module_utils import (
    host_paths,
    host_services,
    host_system,
)
from ansible_collections.vqual.qualification.plugins.module_utils.host_common import (
    DEFAULT_PATHS,
    DEFAULT_TIMEOUT,
    MATCH_LIMIT,
    RAW_LIMIT,
    REDACTED,
    SEARCH_PATH,
    SECRET_KEY,
    TEXT_LIMIT,
    ObservationError,
    observation,
    parse_chronyc_tracking,
    parse_dpkg_status,
    parse_libvirt_conf,
    parse_os_release,
    parse_proc_net,
    parse_sshd_t,
    read_text,
    sha256_file,
    truncate,
)
from ansible_collections.vqual.qualification.plugins.module_utils.host_fingerprint import (
    FINGERPRINT_FILES,
    FINGERPRINT_MAX_FILE_MIB,
    FINGERPRINT_MAX_FILES,
    FINGERPRINT_SSHD_KEYS,
    observe_fingerprint,
)

# What this module offered before its observations moved to their own files: modules,
# plugins, tests and benchmarks import these names from here.
__all__ = [
    "DEFAULT_PATHS",
    "DEFAULT_TIMEOUT",
    "FINGERPRINT_FILES",
    "FINGERPRINT_MAX_FILE_MIB",
    "FINGERPRINT_MAX_FILES",
    "FINGERPRINT_SSHD_KEYS",
    "MATCH_LIMIT",
    "OBSERVATIONS",
    "RAW_LIMIT",
    "REDACTED",
    "SEARCH_PATH",
    "SECRET_KEY",
    "TEXT_LIMIT",
    "HostObserver",
    "ObservationError",
    "ObservationMethod",
    "fingerprint_image",
    "parse_chronyc_tracking",
    "parse_dpkg_status",
    "parse_libvirt_conf",
    "parse_os_release",
    "parse_proc_net",
    "parse_sshd_t",
    "read_text",
    "truncate",
]


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

    def observe_all(self, requests):
        """``{key: observation}`` for a list of ``{key, method, args}`` requests."""
        results = {}
        for request in requests:
            key = request.get("key") or "%s:%r" % (request.get("method"), request.get("args"))
            if key not in results:
                results[key] = self.observe(request.get("method"), request.get("args") or {})
        return results

    def observe(self, method, args):
        """One observation, with ``seconds``: the time this observation itself took on the
        host (the first reader of a shared source pays for reading it). Never raises."""
        started = time.monotonic()
        result = self._observe(method, args)
        result["seconds"] = round(time.monotonic() - started, 6)
        return result

    def _observe(self, method, args):
        handler = OBSERVATIONS.get(str(method)) if method else None
        if handler is None:
            return observation(
                error="unknown host probe method %r" % (method,), method=str(method)
            )
        try:
            return dict(handler(self, dict(args)))
        except ObservationError as exc:
            return observation(error=str(exc), method="host.%s" % method)
        except Exception as exc:
            # One bad observation (a bad regex, an odd file) never ends the whole call.
            return observation(
                error="%s failed: %s: %s" % (method, type(exc).__name__, exc),
                method="host.%s" % method,
            )

    def cached(self, name, produce):
        """``produce()``, run once per batch: the shared sources' cache."""
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


#: An observation method: the observer answering the batch and the request's args, to an
#: observation ``{value, raw, method, error, not_executed}``; it raises ObservationError
#: when the observation cannot be made.
ObservationMethod = Callable[[HostObserver, Dict[str, Any]], Dict[str, Any]]

#: The host probe's methods, by the name a request gives.
OBSERVATIONS: Dict[str, ObservationMethod] = {
    "os_release": host_system.observe_os_release,
    "kernel": host_system.observe_kernel,
    "packages": host_system.observe_packages,
    "processes": host_system.observe_processes,
    "service": host_system.observe_service,
    "file": host_system.observe_file,
    "file_content": host_system.observe_file_content,
    "sysctl": host_system.observe_sysctl,
    "cpu": host_system.observe_cpu,
    "memory": host_system.observe_memory,
    "dmi": host_system.observe_dmi,
    "mount": host_system.observe_mount,
    "listening": host_services.observe_listening,
    "sshd": host_services.observe_sshd,
    "time_sync": host_services.observe_time_sync,
    "dns": host_services.observe_dns,
    "user": host_system.observe_user,
    "group": host_system.observe_group,
    "kernel_module": host_system.observe_kernel_module,
    "libvirt_config": host_services.observe_libvirt_config,
    "command": host_system.observe_command,
    "bonds": host_paths.observe_bonds,
    "multipath": host_paths.observe_multipath,
    "fingerprint": observe_fingerprint,
}


def fingerprint_image(image, args=None, debugfs=None, timeout=120):
    """The ``fingerprint`` observation of a template's ext2/3/4 disk image, read offline.

    The file system is read with ``debugfs -c`` (read-only, nothing mounted, nothing
    booted): ``/etc``, the dpkg status file, ``/usr/lib/os-release`` and the top
    directories of the requested file patterns are extracted into a temporary directory,
    fingerprinted as a root (``observe_fingerprint``), and removed. With ``disk_digest`` the
    SHA-256 of the whole image is added as ``disk_sha256``. Never raises: failures become
    the observation's ``error``.
    """
    import shutil as _shutil
    import tempfile

    args = dict(args or {})
    method = "image.fingerprint debugfs -c %s" % image
    if not isinstance(image, str) or not image.startswith("/") or not os.path.isfile(image):
        return observation(error="template image %r is not a file" % (image,), method=method)
    tool = debugfs or shutil.which("debugfs", path=SEARCH_PATH)
    if not tool:
        return observation(error="debugfs is not installed (e2fsprogs)", method=method)
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
            return observation(
                error="debugfs failed (rc %d): %s" % (rc, " ".join(err.split())[:300]),
                method=method,
            )
        args["root"] = work
        args["security_keys"] = []
        args.pop("services", None)
        found = observe_fingerprint(observer, args)
        value = found["value"]
        # Paths are the image's own, not the temporary directory's.
        if args.get("disk_digest"):
            value["disk_sha256"] = sha256_file(image)
        value["image"] = image
        raw = "image %s\n%s" % (image, found["raw"].replace(work, "<image>"))
        return observation(value, raw, method)
    except ObservationError as exc:
        return observation(error=str(exc).replace(work, "<image>"), method=method)
    except Exception as exc:  # one bad image never ends the run with a traceback
        return observation(error="%s: %s" % (type(exc).__name__, exc), method=method)
    finally:
        _shutil.rmtree(work, ignore_errors=True)
