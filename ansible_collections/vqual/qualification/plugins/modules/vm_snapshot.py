#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_snapshot
short_description: Create, revert to or delete a VM snapshot (libvirt, vSphere)
description:
  - V(present) creates the snapshot O(snapshot) of the VM O(name) unless one of that name
    exists; V(absent) deletes it if it exists; V(reverted) reverts the VM to it (always a
    change, as a revert discards the VM's state since the snapshot).
  - On vSphere a running VM's snapshot includes its memory, so a revert brings it back running.
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
  snapshot:
    description: The snapshot's name.
    type: str
    required: true
  state:
    description: What to do with the snapshot.
    type: str
    choices: [present, absent, reverted]
    default: present
  description:
    description: Description of a new snapshot.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    description: Reports whether the snapshot would be created, deleted or reverted to.
  diff_mode:
    support: full
    description: The VM's snapshot names before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where the task is delegated (usually the controller), a POSIX system.
"""

EXAMPLES = r"""
- name: Snapshot the Master-VM before a change
  vqual.qualification.vm_snapshot:
    platform: vsphere
    hostname: vcenter.example.org
    name: master-rhel9
    snapshot: "before-CHG0012345"
    description: "state before change CHG0012345"
  delegate_to: localhost

- name: Go back to it
  vqual.qualification.vm_snapshot:
    platform: vsphere
    hostname: vcenter.example.org
    name: master-rhel9
    snapshot: "before-CHG0012345"
    state: reverted
  delegate_to: localhost
"""

RETURN = r"""
snapshots:
  description: The VM's snapshots after the task (before it, in check mode).
  returned: success
  type: list
  elements: dict
  sample: [{name: before-CHG0012345, vm: master-rhel9, power_state: running, current: true}]
vm:
  description: The VM's facts after a revert.
  returned: when O(state=reverted) and not in check mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_platform import (
    PlatformError,
    fail,
    open_platform,
    platform_argument_spec,
)


class VmSnapshot:
    def __init__(self, module):
        self.module = module

    def run(self):
        params = self.module.params
        vm, snap, state = params["name"], params["snapshot"], params["state"]
        platform = open_platform(self.module, "vm_snapshot")
        result = {}
        try:
            before = [s.name for s in platform.snapshots(vm)]
            exists = snap in before
            if state == "present":
                changed = not exists
                after = before + [snap] if changed else before
            elif state == "absent":
                changed = exists
                after = [s for s in before if s != snap]
            else:
                if not exists:
                    self.module.fail_json(
                        msg="vm_snapshot reverted %s failed: snapshot %r of vm %r not found"
                        % (snap, snap, vm)
                    )
                changed, after = True, before
            if changed and not self.module.check_mode:
                if state == "present":
                    platform.snapshot_create(vm, snap, description=params["description"])
                elif state == "absent":
                    platform.snapshot_delete(vm, snap)
                else:
                    result["vm"] = platform.snapshot_revert(vm, snap).to_json()
            snapshots = platform.snapshots(vm)
        except PlatformError as exc:
            fail(self.module, "vm_snapshot %s %s of %s" % (state, snap, vm), exc)
        finally:
            platform.close()
        result.update(
            changed=changed,
            snapshots=[s.to_json() for s in snapshots],
            diff={"before": {"snapshots": before}, "after": {"snapshots": after}},
        )
        return result


def main():
    argument_spec = platform_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        snapshot=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent", "reverted"]),
        description=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(**VmSnapshot(module).run())


if __name__ == "__main__":
    main()
