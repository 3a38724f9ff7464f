#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_probe
short_description: Observe a Linux host for qualification, all observations in one call
description:
  - Answers a batch of observation requests on a Linux host in one module call, so that
    qualifying a host costs one round trip however many tests it has.
  - The controller collects the requests of every test planned for the host, removes
    duplicates by key, and passes them in O(requests); each answer is returned under the
    request's key in RV(observations).
  - Reads files directly where it can (C(/etc/os-release), C(/var/lib/dpkg/status), C(/proc),
    C(/sys)) and reads each shared source once per call, even when many requests need it.
    Commands (C(sshd -T), C(chronyc), C(systemctl), C(rpm)) run without a shell and with a
    timeout.
  - One failed observation never fails the call; it gets an C(error) text instead.
  - Read-only; never changes the host.
version_added: "0.1.0"
author:
  - vqual contributors (!UNKNOWN)
options:
  requests:
    description:
      - The observations to make.
      - "Methods and their O(requests[].args):
        C(os_release) {};
        C(kernel) {};
        C(packages) {names};
        C(processes) {name, cmdline};
        C(service) {name, process};
        C(file) {path, checksum};
        C(file_content) {path, pattern};
        C(sysctl) {key};
        C(cpu) {};
        C(memory) {};
        C(dmi) {};
        C(mount) {path};
        C(listening) {};
        C(sshd) {key};
        C(time_sync) {};
        C(dns) {name};
        C(user) {name};
        C(group) {name};
        C(kernel_module) {name};
        C(libvirt_config) {path, key};
        C(command) {argv, timeout};
        C(bonds) {} (every bond in /proc/net/bonding and every team from teamdctl state dump);
        C(multipath) {} (every map, from multipathd show maps json, else sysfs);
        C(fingerprint) {files, default_files, services, security_keys, root, max_files, max_file_mib}."
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: The request's key; its observation is returned under it.
        type: str
        required: true
      method:
        description: The observation method.
        type: str
        required: true
      args:
        description: The method's arguments.
        type: dict
        default: {}
  command_timeout:
    description: Seconds a command may run before its observation is an error.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode returns the same observations.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: The target is a POSIX (Linux) host; the module uses its standard library only.
notes:
  - Without systemd running (containers, chroots), C(service) falls back to looking for a
    process of the same name and says so in the observation's C(method).
  - C(processes) and the C(service) fallback count only processes that share the probe's root
    directory; processes chrooted elsewhere (containers, lab hosts) belong to another system.
  - The C(command) method is an escape hatch for read-only commands; it runs what it is given
    and must never be pointed at a command that changes the host.
  - Files up to 64 KiB are returned whole by C(file_content); for bigger files only their
    SHA-256 and the lines matching the pattern are returned. Its C(raw) output, which goes
    into evidence, is always the SHA-256 and the matching lines only.
  - C(libvirt_config) never returns the value of a key that looks secret (C(vnc_password),
    C(spice_password), anything with pass, secret, token, private, credential or api_key in its
    name); it returns C(<redacted>), so only whether it is set can be checked.
"""

EXAMPLES = r"""
- name: Observe the OS release and the SSH root login setting in one call
  vqual.qualification.host_probe:
    requests:
      - key: "host:os_release:{}"
        method: os_release
        args: {}
      - key: 'host:sshd:{"key":"permitrootlogin"}'
        method: sshd
        args:
          key: permitrootlogin
  register: probe

- name: Show whether root may log in over SSH
  ansible.builtin.debug:
    msg: "{{ probe.observations['host:sshd:{\"key\":\"permitrootlogin\"}'].value }}"

- name: Package versions and a file's checksum
  vqual.qualification.host_probe:
    requests:
      - key: packages
        method: packages
        args:
          names: [libvirt-daemon-system, qemu-system-x86]
      - key: sshd_config
        method: file
        args:
          path: /etc/ssh/sshd_config
          checksum: true
    command_timeout: 5
"""

RETURN = r"""
observations:
  description: One observation per distinct request key.
  returned: always
  type: dict
  sample:
    "host:os_release:{}":
      value: {ID: debian, VERSION_ID: "12"}
      raw: "ID=debian\nVERSION_ID=\"12\"\n"
      method: host.file /etc/os-release
      error: null
      not_executed: null
      seconds: 0.000412
  contains:
    value:
      description: The observed value (JSON); its shape depends on the method.
      type: raw
      returned: always
    raw:
      description: Raw output a reviewer can check the value against (a file, a command's
        output, the matching line), cut to 16 KiB; null when there is nothing useful.
      type: str
      returned: always
    method:
      description: How it was observed, e.g. C(host.file /etc/os-release) or
        C(host.sshd /usr/sbin/sshd -T).
      type: str
      returned: always
    error:
      description: Why the observation could not be made; null when it was made.
      type: str
      returned: always
    not_executed:
      description: Why the step was not performed; null when it was.
      type: str
      returned: always
    seconds:
      description: Seconds this observation took on the host (its own time, not the
        module's); the first observation reading a shared source pays for reading it.
      type: float
      returned: always
probe_seconds:
  description: Seconds the module spent observing.
  returned: always
  type: float
  sample: 0.042
"""

import time  # noqa: E402  (modules import after their documentation)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.vqual.qualification.plugins.module_utils.host_observations import (  # noqa: E402
    HostObserver,
)


class HostProbe:
    """Runs the requested observations; a thin shell around :class:`HostObserver`."""

    def __init__(self, module):
        self.module = module
        self.observer = HostObserver(command_timeout=module.params["command_timeout"])

    def run(self):
        started = time.monotonic()
        observations = self.observer.observe_all(self.module.params["requests"])
        return {
            "changed": False,
            "observations": observations,
            "probe_seconds": round(time.monotonic() - started, 4),
        }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            requests=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    key=dict(type="str", required=True, no_log=False),
                    method=dict(type="str", required=True),
                    args=dict(type="dict", default={}),
                ),
            ),
            command_timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    if module.params["command_timeout"] < 1:
        module.fail_json(msg="host_probe failed: command_timeout must be at least 1 second")
    module.exit_json(**HostProbe(module).run())


if __name__ == "__main__":
    main()
