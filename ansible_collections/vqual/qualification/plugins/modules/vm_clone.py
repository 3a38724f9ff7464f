#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_clone
short_description: Clone a VM, for example a clone of a qualified Master-VM (libvirt, vSphere)
description:
  - Creates the VM O(name) as a clone of O(source), powered off, unless a VM called O(name)
    exists already (C(changed=false); its facts are returned, it is not compared with the
    source).
  - libvirt copies the source's storage volumes and gives the clone a new UUID and MAC
    addresses; vSphere uses C(CloneVM_Task) into the source's datacenter.
version_added: "0.1.0"
author:
  - vqual contributors (!UNKNOWN)
extends_documentation_fragment:
  - vqual.qualification.platform
options:
  source:
    description: The VM to clone (stopped, on libvirt).
    type: str
    required: true
  name:
    description: The clone's name.
    type: str
    required: true
attributes:
  check_mode:
    support: full
    description: Reports whether the clone would be created, without creating it.
  diff_mode:
    support: full
    description: Whether the clone existed before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where the task is delegated (usually the controller), a POSIX system.
"""

EXAMPLES = r"""
- name: Clone the qualified Master-VM
  vqual.qualification.vm_clone:
    platform: vsphere
    hostname: vcenter.example.org
    username: "{{ vcenter_user }}"
    password: "{{ vcenter_password }}"
    source: master-rhel9
    name: app-rhel9-017
  delegate_to: localhost
"""

RETURN = r"""
vm:
  description: The clone's facts (absent in check mode when it would be created).
  returned: when the clone exists after the task
  type: dict
  sample: {name: app-rhel9-017, uuid: 4211..., power_state: stopped}
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
    argument_spec.update(
        source=dict(type="str", required=True),
        name=dict(type="str", required=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    source, name = module.params["source"], module.params["name"]
    platform = open_platform(module, "vm_clone")
    result = {}
    try:
        existed = platform.vm_exists(name)
        if existed:
            result["vm"] = platform.vm(name).to_json()
        else:
            platform.vm(source)  # a missing source fails the task, in check mode too
            if not module.check_mode:
                result["vm"] = platform.clone_vm(source, name).to_json()
    except PlatformError as exc:
        fail(module, "vm_clone %s to %s" % (source, name), exc)
    finally:
        platform.close()
    result.update(
        changed=not existed,
        diff={"before": {"exists": existed}, "after": {"exists": True}},
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
