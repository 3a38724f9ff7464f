#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: hypervisor_info
short_description: Read what a hypervisor endpoint is and what it manages (libvirt, vSphere, Hyper-V)
description:
  - Returns the endpoint's product and versions, its hosts (hardware, firmware, CPU, memory,
    hypervisor build, maintenance state, cluster), clusters, datastores and networks, as the
    C(qualification) package's platform adapters report them.
  - Read-only; never changes anything.
version_added: "0.1.0"
author:
  - vqual contributors (!UNKNOWN)
extends_documentation_fragment:
  - vqual.qualification.platform
options:
  gather:
    description: What to read besides O(platform)'s C(about) information.
    type: list
    elements: str
    choices: [hosts, clusters, datastores, networks]
    default: [hosts, clusters, datastores, networks]
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
- name: Read a vCenter's hosts and clusters
  vqual.qualification.hypervisor_info:
    platform: vsphere
    hostname: vcenter.example.org
    username: "{{ vcenter_user }}"
    password: "{{ vcenter_password }}"
    cluster: Cluster01
    gather: [hosts, clusters]
  delegate_to: localhost
  register: vc

- name: Read a Hyper-V host over WinRM (HTTPS, certificate verified)
  vqual.qualification.hypervisor_info:
    platform: hyperv
    hostname: hv1.example.org
    username: "{{ hyperv_user }}"
    password: "{{ hyperv_password }}"
    winrm_transport: kerberos
    gather: [hosts, networks]
  delegate_to: localhost

- name: Read a KVM host's libvirt
  vqual.qualification.hypervisor_info:
    platform: libvirt
    uri: qemu+ssh://root@kvm1.example.org/system
  delegate_to: localhost
"""

RETURN = r"""
about:
  description: The endpoint's product and versions (password never included).
  returned: always
  type: dict
  sample: {platform: vsphere, product: VMware vCenter Server, version: 6.5.0, api_version: "6.5",
           endpoint: "https://vcenter.example.org:443/sdk"}
hosts:
  description: Hosts with CPU, memory, hardware, firmware, software, maintenance state and cluster.
  returned: when C(hosts) is gathered
  type: list
  elements: dict
clusters:
  description: Clusters with their hosts and attributes (HA, DRS).
  returned: when C(clusters) is gathered
  type: list
  elements: dict
datastores:
  description: Datastores (vSphere) or storage pools (libvirt) with capacity; Hyper-V reports them as not supported.
  returned: when C(datastores) is gathered
  type: list
  elements: dict
networks:
  description: Networks, port groups or Hyper-V virtual switches.
  returned: when C(networks) is gathered
  type: list
  elements: dict
not_supported:
  description: What was asked for but the platform cannot report, with the reason.
  returned: always
  type: dict
  sample: {clusters: "libvirt has no cluster object; clusters of libvirt hosts are defined in the inventory"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_platform import (
    NotSupported,
    PlatformError,
    fail,
    open_platform,
    platform_argument_spec,
)


class HypervisorInfo:
    def __init__(self, module):
        self.module = module

    def run(self):
        platform = open_platform(self.module, "hypervisor_info", readonly=True)
        try:
            result = {"changed": False, "about": platform.about().to_json()}
            readers = {
                "hosts": platform.hosts,
                "clusters": platform.clusters,
                "datastores": platform.datastores,
                "networks": platform.networks,
            }
            not_supported = {}
            for name in self.module.params["gather"]:
                try:
                    result[name] = [item.to_json() for item in readers[name]()]
                except NotSupported as exc:  # libvirt has no cluster object: say so, go on
                    not_supported[name] = exc.reason
            result["not_supported"] = not_supported
            return result
        except PlatformError as exc:
            fail(self.module, "hypervisor_info", exc)
        finally:
            platform.close()


def main():
    argument_spec = platform_argument_spec()
    argument_spec.update(
        gather=dict(
            type="list", elements="str", choices=["hosts", "clusters", "datastores", "networks"],
            default=["hosts", "clusters", "datastores", "networks"],
        )
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(**HypervisorInfo(module).run())


if __name__ == "__main__":
    main()
