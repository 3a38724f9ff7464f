# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

"""Host probe observations of what the host serves and how: listening sockets, sshd's
effective settings, time synchronisation, name resolution, libvirt's configuration.

Each ``observe_<method>(observer, args)`` returns an observation dict; the table of methods
is :data:`~.host_observations.OBSERVATIONS`. Standard library and module_utils only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import socket
import threading

from ansible_collections.vqual.qualification.plugins.module_utils.host_common import (
    REDACTED,
    SECRET_KEY,
    ObservationError,
    absolute,
    kernel_clock_state,
    observation,
    parse_chronyc_tracking,
    parse_libvirt_conf,
    parse_proc_net,
    read_text,
    sshd_settings,
    truncate,
)


def _listening(observer):
    result = {"tcp": [], "udp": []}
    for protocol in ("tcp", "udp"):
        for suffix, family in (("", socket.AF_INET), ("6", socket.AF_INET6)):
            path = os.path.join(observer.paths["proc"], "net", protocol + suffix)
            if os.path.exists(path):
                result[protocol].extend(parse_proc_net(read_text(path), protocol, family))
    for protocol in result:
        result[protocol] = sorted(result[protocol], key=lambda e: (e["port"], e["address"]))
    return result


def observe_listening(observer, args):
    value = observer.cached("listening", lambda: _listening(observer))
    raw = "\n".join(
        "%s %s:%d" % (proto, entry["address"], entry["port"])
        for proto in ("tcp", "udp")
        for entry in value[proto]
    )
    return observation(
        value, truncate(raw) or None, "host.listening /proc/net/{tcp,tcp6,udp,udp6}"
    )


def observe_sshd(observer, args):
    key = str(args.get("key") or "").lower()
    sshd, settings = observer.cached("sshd", lambda: sshd_settings(observer))
    values = settings.get(key)
    if values is None:
        value = None
        raw = "%s not in sshd -T output" % key
    else:
        value = values[0] if len(values) == 1 else values
        raw = "\n".join("%s %s" % (key, v) for v in values)
    return observation(value, raw, "host.sshd %s -T" % sshd)


def observe_time_sync(observer, args):
    chronyc = observer.which("chronyc")
    if chronyc:
        rc, out, err = observer.run([chronyc, "-n", "tracking"])
        if rc == 0:
            fields = parse_chronyc_tracking(out)
            leap = fields.get("Leap status", "")
            value = {
                "synchronised": bool(leap) and leap != "Not synchronised",
                "source": fields.get("Reference ID"),
                "daemon": "chronyd",
            }
            return observation(
                value, truncate(out.strip()), "host.time_sync chronyc -n tracking"
            )
        chrony_error = " ".join((err or out).split())[:200]
    else:
        chrony_error = None
    timedatectl = observer.which("timedatectl")
    if timedatectl and os.path.isdir(observer.paths["systemd_run"]):
        rc, out, err = observer.run(
            [timedatectl, "show", "--property=NTPSynchronized", "--property=NTP"]
        )
        if rc == 0:
            props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            # The server is known only while systemd-timesyncd runs; else it stays None.
            source = None
            rc2, out2, _err2 = observer.run([timedatectl, "show-timesync", "--property=ServerName"])
            if rc2 == 0 and "=" in out2:
                source = out2.strip().split("=", 1)[1] or None
            value = {
                "synchronised": props.get("NTPSynchronized") == "yes",
                "source": source,
                "daemon": "systemd-timesyncd" if props.get("NTP") == "yes" else None,
            }
            return observation(value, out.strip(), "host.time_sync timedatectl show")
    ntpq = observer.which("ntpq")
    if ntpq:
        rc, out, err = observer.run([ntpq, "-pn"])
        if rc == 0:
            peer = next(
                (line.split()[0][1:] for line in out.splitlines() if line.startswith("*")), None
            )
            value = {"synchronised": peer is not None, "source": peer, "daemon": "ntpd"}
            return observation(value, truncate(out.strip()), "host.time_sync ntpq -pn")
    # No daemon answered: the kernel still knows whether anyone disciplines the clock.
    state = kernel_clock_state()
    note = "no time daemon answered (chronyc: %s)" % (chrony_error or "not installed")
    if state is None:
        raise ObservationError(note + "; kernel clock state unavailable")
    value = {"synchronised": state == "synchronised", "source": None, "daemon": None}
    return observation(
        value,
        "%s; kernel clock state: %s" % (note, state),
        "host.time_sync adjtimex (kernel clock state)",
    )


def observe_dns(observer, args):
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
    worker.join(observer.command_timeout)
    if worker.is_alive():
        raise ObservationError(
            "resolving %s timed out after %ss" % (name, observer.command_timeout)
        )
    if "error" in box:
        # Not resolving is the observation (a fail), not a probe error.
        return observation(
            [], "getaddrinfo(%s): %s" % (name, box["error"]), "host.dns getaddrinfo"
        )
    addresses = sorted(set(info[4][0] for info in box["value"]))
    return observation(
        addresses, "%s -> %s" % (name, " ".join(addresses)), "host.dns getaddrinfo"
    )


def observe_libvirt_config(observer, args):
    path = absolute(args.get("path"))
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

    settings, text = observer.cached("libvirt:" + path, load)
    if key in settings:
        if SECRET_KEY.search(key):
            # vnc_password and the like: whether it is set is observable, its value never.
            return observation(
                {"found": True, "value": REDACTED},
                "%s = %s" % (key, REDACTED),
                "host.libvirt_config %s" % path,
            )
        assignment = re.compile(r"\s*%s\s*=" % re.escape(key))
        line = next((row for row in text.splitlines() if assignment.match(row)), None)
        return observation(
            {"found": True, "value": settings[key]}, line, "host.libvirt_config %s" % path
        )
    return observation(
        {"found": False, "value": None},
        "%s not set in %s" % (key, path),
        "host.libvirt_config %s" % path,
    )
