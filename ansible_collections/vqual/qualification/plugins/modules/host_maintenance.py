#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_maintenance
short_description: Put a host into maintenance mode or take it out (libvirt, vSphere)
description:
  - V(present) puts the host O(host) into maintenance mode, V(absent) takes it out; a host
    already in the wanted state is left alone (C(changed=false)).
  - vSphere uses C(EnterMaintenanceMode_Task)/C(ExitMaintenanceMode_Task); vCenter with DRS
    evacuates running VMs first (VMware's simulator only sets the flag).
  - libvirt has no maintenance mode; vqual keeps a marker in its state directory that its
    own operations honour (no VM is started on or migrated to such a host).
version_added: "0.1.0"
author:
  - vqual contributors (!UNKNOWN)
extends_documentation_fragment:
  - vqual.qualification.platform
options:
  host:
    description:
      - The host's name. May be left out where the endpoint has one host (libvirt, ESXi).
    type: str
  state:
    description: V(present) in maintenance, V(absent) out of it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports whether the maintenance state would change, without changing it.
  diff_mode:
    support: full
    description: The maintenance state before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where the task is delegated (usually the controller), a POSIX system.
"""

EXAMPLES = r"""
- name: Put an ESXi host of the cluster into maintenance before patching
  vqual.qualification.host_maintenance:
    platform: vsphere
    hostname: vcenter.example.org
    username: "{{ vcenter_user }}"
    password: "{{ vcenter_password }}"
    host: esx1.example.org
    state: present
  delegate_to: localhost

- name: Return a KVM host to production
  vqual.qualification.host_maintenance:
    platform: libvirt
    uri: qemu+ssh://root@kvm1.example.org/system
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
host:
  description: The host's facts after the task (before it, in check mode).
  returned: success
  type: dict
  sample: {name: esx1.example.org, in_maintenance: true, cluster: Cluster01}
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
        host=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    host, wanted = module.params["host"], module.params["state"] == "present"
    platform = open_platform(module, "host_maintenance")
    try:
        before = platform.host(host)
        changed = before.in_maintenance != wanted
        after = before
        if changed and not module.check_mode:
            after = platform.enter_maintenance(host) if wanted else platform.exit_maintenance(host)
    except PlatformError as exc:
        fail(module, " ".join(["host_maintenance", module.params["state"]] + ([host] if host else [])), exc)
    finally:
        platform.close()
    module.exit_json(
        changed=changed,
        host=after.to_json(),
        diff={
            "before": {"in_maintenance": before.in_maintenance},
            "after": {"in_maintenance": wanted if changed else before.in_maintenance},
        },
    )


if __name__ == "__main__":
    main()
