#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_migrate
short_description: Move a VM to another host, live when it runs (libvirt, vSphere)
description:
  - vSphere moves the VM O(name) to the host O(destination) with C(RelocateVM_Task) (vMotion
    for a running VM); a VM already on that host is left alone (C(changed=false)).
  - libvirt migrates the domain from the connection O(uri) to the libvirt URI O(destination);
    a domain that is no longer on the source but defined at the destination is left alone.
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
  destination:
    description: vSphere a host name; libvirt the destination's connection URI.
    type: str
    required: true
  live:
    description: Migrate a running VM without stopping it; V(false) needs a stopped VM on vSphere.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports whether the VM would move, without moving it.
  diff_mode:
    support: full
    description: The VM's host before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where the task is delegated (usually the controller), a POSIX system.
"""

EXAMPLES = r"""
- name: Move a VM off the host about to be patched
  vqual.qualification.vm_migrate:
    platform: vsphere
    hostname: vcenter.example.org
    username: "{{ vcenter_user }}"
    password: "{{ vcenter_password }}"
    name: app01
    destination: esx2.example.org
  delegate_to: localhost

- name: Live-migrate a KVM guest
  vqual.qualification.vm_migrate:
    platform: libvirt
    uri: qemu+ssh://root@kvm1.example.org/system
    name: app01
    destination: qemu+ssh://root@kvm2.example.org/system
  delegate_to: localhost
"""

RETURN = r"""
vm:
  description: The VM's facts after the task (before it, in check mode).
  returned: success
  type: dict
  sample: {name: app01, host: esx2.example.org, power_state: running}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_platform import (
    PlatformError,
    fail,
    migration_state,
    open_platform,
    platform_argument_spec,
)


class VmMigrate:
    def __init__(self, module):
        self.module = module

    def run(self):
        params = self.module.params
        name, destination = params["name"], params["destination"]
        platform = open_platform(self.module, "vm_migrate")
        try:
            there, before, shown = migration_state(self.module, platform, name, destination)
            after = before
            if not there and not self.module.check_mode:
                after = platform.migrate_vm(name, destination, live=params["live"])
        except PlatformError as exc:
            fail(self.module, "vm_migrate %s to %s" % (name, destination), exc)
        finally:
            platform.close()
        return {
            "changed": not there,
            "vm": after.to_json(),
            "diff": {
                "before": {"host": before.host},
                "after": {"host": after.host if not self.module.check_mode else shown},
            },
        }


def main():
    argument_spec = platform_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        destination=dict(type="str", required=True),
        live=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(**VmMigrate(module).run())


if __name__ == "__main__":
    main()
