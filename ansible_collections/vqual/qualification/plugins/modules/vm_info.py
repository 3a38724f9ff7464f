#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_info
short_description: Read VMs of a hypervisor endpoint (libvirt, vSphere)
description:
  - Returns every VM, or the one named O(name), with identity, host, power state, vCPUs,
    memory, firmware, disks, NICs, other devices, snapshots and a digest of its configuration.
  - Read-only; never changes anything.
version_added: "0.1.0"
author:
  - vqual contributors (!UNKNOWN)
extends_documentation_fragment:
  - vqual.qualification.platform
options:
  name:
    description: Only this VM. The task fails if it does not exist.
    type: str
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs in check mode as it does otherwise.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Runs where the task is delegated (usually the controller), a POSIX system.
"""

EXAMPLES = r"""
- name: Read one VM on vCenter
  vqual.qualification.vm_info:
    platform: vsphere
    hostname: vcenter.example.org
    name: master-rhel9
  delegate_to: localhost
  register: vm
  environment:
    VMWARE_USER: "{{ vcenter_user }}"
    VMWARE_PASSWORD: "{{ vcenter_password }}"

- name: List the domains of a KVM host
  vqual.qualification.vm_info:
    platform: libvirt
    uri: qemu:///system
  delegate_to: localhost
"""

RETURN = r"""
vms:
  description: The VMs (one when O(name) is given), sorted by name.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: master-rhel9, uuid: 4211c5f0-..., host: esx1.example.org, power_state: running,
       vcpus: 2, memory_mib: 4096, firmware: efi, secure_boot: true, snapshots: []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_platform import (
    PlatformError,
    fail,
    open_platform,
    platform_argument_spec,
)


def main():
    argument_spec = platform_argument_spec()
    argument_spec.update(name=dict(type="str"))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    platform = open_platform(module, "vm_info", readonly=True)
    try:
        name = module.params["name"]
        vms = [platform.vm(name)] if name else platform.vms()
        result = {"changed": False, "vms": [vm.to_json() for vm in vms]}
    except PlatformError as exc:
        fail(module, "vm_info", exc)
    finally:
        platform.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
