#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_power
short_description: Power a VM on or off (libvirt, vSphere)
description:
  - Brings the VM O(name) to the power state O(state). A VM already in that state is left
    alone (C(changed=false)).
version_added: "0.1.0"
author:
  - vqual contributors (!UNKNOWN)
extends_documentation_fragment:
  - vqual.qualification.platform
options:
  name:
    description: The VM.
    type: str
    required: true
  state:
    description: V(running) powers the VM on, V(stopped) powers it off.
    type: str
    choices: [running, stopped]
    required: true
  graceful:
    description:
      - With O(state=stopped), ask the guest to shut down (guest tools or ACPI) and wait up to
        O(timeout) seconds, instead of a hard power off.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for a graceful shutdown.
    type: float
    default: 60
attributes:
  check_mode:
    support: full
    description: Reports whether the power state would change, without changing it.
  diff_mode:
    support: full
    description: The power state before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where the task is delegated (usually the controller), a POSIX system.
"""

EXAMPLES = r"""
- name: Power on the Master-VM
  vqual.qualification.vm_power:
    platform: vsphere
    hostname: vcenter.example.org
    username: "{{ vcenter_user }}"
    password: "{{ vcenter_password }}"
    name: master-rhel9
    state: running
  delegate_to: localhost

- name: Shut a KVM guest down cleanly
  vqual.qualification.vm_power:
    platform: libvirt
    uri: qemu:///system
    name: app01
    state: stopped
    graceful: true
    timeout: 120
  delegate_to: localhost
"""

RETURN = r"""
vm:
  description: The VM's facts after the task (before it, in check mode).
  returned: success
  type: dict
  sample: {name: master-rhel9, power_state: running, host: esx1.example.org}
diff:
  description: The power state before and after.
  returned: when diff mode is on
  type: dict
  sample: {before: {power_state: stopped}, after: {power_state: running}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_platform import (
    PlatformError,
    fail,
    open_platform,
    platform_argument_spec,
)


class VmPower:
    def __init__(self, module):
        self.module = module

    def run(self):
        params = self.module.params
        name, wanted = params["name"], params["state"]
        platform = open_platform(self.module, "vm_power")
        try:
            before = platform.vm(name)
            changed = before.power_state != wanted
            after = before
            if changed and not self.module.check_mode:
                if wanted == "running":
                    after = platform.power_on(name)
                else:
                    after = platform.power_off(
                        name, graceful=params["graceful"], timeout_s=params["timeout"]
                    )
        except PlatformError as exc:
            fail(self.module, "vm_power %s %s" % (wanted, name), exc)
        finally:
            platform.close()
        return {
            "changed": changed,
            "vm": after.to_json(),
            "diff": {
                "before": {"power_state": before.power_state},
                "after": {"power_state": wanted if changed else before.power_state},
            },
        }


def main():
    argument_spec = platform_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", required=True, choices=["running", "stopped"]),
        graceful=dict(type="bool", default=False),
        timeout=dict(type="float", default=60.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(**VmPower(module).run())


if __name__ == "__main__":
    main()
