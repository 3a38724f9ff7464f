#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: libvirt_probe
short_description: Observe and exercise a libvirt hypervisor for qualification, in one connection
description:
  - Answers a batch of observation requests about one libvirt hypervisor over one libvirt
    connection, so that qualifying a hypervisor costs one API session however many tests
    it has.
  - Runs on the controller. Delegate it to C(localhost), as with the VMware collections; it
    uses the C(qualification) Python package (vqual) and C(libvirt-python) there.
  - IQ methods only read. They open the connection read-only when no OQ method is asked for.
  - OQ methods change state, on a throwaway domain named C(vqual-oq-<run id>) that the
    module defines, exercises and always removes again. Each step is reported as an action
    with the state before and after, and passes only when the operation succeeded and its
    post-condition held on the state read back.
  - Everything happens inside one connection in one module call, because libvirt's test
    driver (C(test:///default)) re-reads its definition when a process opens it, so nothing
    done in one module call is there in the next.
  - One failed observation never fails the call; it gets an C(error) text instead. A URI that
    cannot be opened makes every observation an error with libvirt's one-line reason.
version_added: "0.1.0"
author:
  - vqual contributors (!UNKNOWN)
requirements:
  - vqual (the C(qualification) Python package) on the controller
  - libvirt-python
options:
  uri:
    description:
      - The libvirt connection URI, for example C(test:///default), C(qemu:///system) or
        C(qemu+ssh://root@kvm1.example.com/system).
      - If not set, the value of the environment variable E(VQUAL_LIBVIRT_URI) is used.
      - Keep credentials out of the URI (use SSH keys, TLS client certificates or libvirt's
        auth file). A password that is in it anyway is masked in everything the module
        returns, its invocation included.
    type: str
    required: true
  requests:
    description:
      - The observations to make; each is answered under its O(requests[].key).
      - "IQ methods and their O(requests[].args):
        C(version) {} - hypervisor type, hypervisor version, libvirt library version;
        C(nodeinfo) {} - CPU model, logical CPUs, MHz, memory, NUMA nodes, topology;
        C(capabilities) {} - host arch, CPU, security models, guests (OS types, arches,
        domain types, machines);
        C(hostname) {};
        C(sysinfo) {} - SMBIOS tables where the driver reports them;
        C(host) {} - host facts, including vqual's maintenance marker;
        C(domains) {} - every domain with placement and configuration;
        C(domain) {name} - one domain;
        C(pools) {}; C(networks) {}."
      - "OQ methods: C(oq_lifecycle) {steps, graceful_stop, disk_mib, pool} with
        C(steps) a list out of C(define), C(start), C(snapshot_create),
        C(stop), C(snapshot_revert), C(snapshot_delete), C(undefine) (default all; steps a
        requested step needs are run too; a step whose needed step did not pass is
        C(not-executed)); the throwaway domain gets an empty qcow2 disk of C(disk_mib) MiB
        (default 16) in storage pool C(pool) (default the first active pool; none: no disk),
        because QEMU keeps a running domain's snapshots in its qcow2 disk.
        C(oq_migrate) {destination} - live migration of a diskless throwaway domain to the
        destination URI (C(not_executed) where the driver cannot migrate).
        C(oq_guest_migrate) {template, destination, unsafe_migration, boot_timeout, load_mib} - a
        throwaway guest cloned from the template domain (qcow2 overlay, vqual tag) is booted
        and live-migrated to the destination URI; the interruption is measured by a
        heartbeat inside the guest read through the QEMU guest agent.
        C(oq_backup_restore) {template, boot_timeout} - marker written in a throwaway
        guest, push backup, restored as a new guest, marker read back through its agent.
        C(oq_guest_cycle) {template, destination, unsafe_migration, boot_timeout} - one
        throwaway guest: clone from the template, power cycle, snapshot with memory and a
        marker reverted, and (with a destination) evacuation, maintenance that refuses VMs,
        leave; each part's verdict in the value.
        C(oq_guest_failover) {failover: {domain, peers, fail_command, restore_command,
        prepare_command, versions_command, bound_s}} - the host running the HA domain is
        failed by the site's command, the guest must answer on another host with the marker
        written before the failure; the host is restored."
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
  run_id:
    description:
      - The vqual run id; names the throwaway domain C(vqual-oq-<run id>).
      - A new run id (UTC time and random hex) when not given.
    type: str
  state_dir:
    description:
      - vqual's state directory, where the maintenance markers of libvirt hosts are kept
        (C(platforms/libvirt/maintenance/)).
      - Default E(VQUAL_STATE_DIR), else C($XDG_DATA_HOME/vqual).
    type: path
  domain_type:
    description:
      - The domain type of throwaway domains, for example C(qemu) for TCG on hosts where
        KVM acceleration must not be used.
      - Default the first of C(kvm), C(qemu), C(test) that the host offers.
    type: str
attributes:
  check_mode:
    support: full
    description: IQ methods run (they only read); OQ methods are not executed and return
      C(not_executed) with the reason C(check mode).
  diff_mode:
    support: none
    description: The throwaway domain is removed again, so no lasting change is left to diff.
  platform:
    support: full
    platforms: posix
    description: Runs where the task is delegated (usually the controller), a POSIX system.
notes:
  - libvirt has no maintenance mode and no placement rules. vqual keeps a host's maintenance
    marker in the state directory and a domain's allowed hosts in a domain metadata element
    (namespace C(urn:x-vqual:libvirt:1)); vqual's operations honour both.
  - The test driver has one host per connection, no migration and no guest agent; C(hostname)
    there reports the machine the driver runs on.
seealso:
  - name: libvirt connection URIs
    description: URI formats for local and remote hypervisors.
    link: https://libvirt.org/uri.html
  - name: libvirt test driver
    description: The in-process hypervisor used by the embedded default.
    link: https://libvirt.org/drvtest.html
"""

EXAMPLES = r"""
- name: Read the hypervisor's versions and node info in one connection
  vqual.qualification.libvirt_probe:
    uri: "test:///default"
    requests:
      - key: "libvirt:version:{}"
        method: version
        args: {}
      - key: "libvirt:nodeinfo:{}"
        method: nodeinfo
        args: {}
  delegate_to: localhost
  register: hv

- name: Show the libvirt library version
  ansible.builtin.debug:
    msg: "{{ hv.observations['libvirt:version:{}'].value.libvirt_version }}"

- name: Run the OQ lifecycle on a throwaway domain
  vqual.qualification.libvirt_probe:
    uri: "{{ vqual_libvirt_uri }}"
    run_id: "{{ vqual_run_id }}"
    domain_type: qemu
    requests:
      - key: oq
        method: oq_lifecycle
        args:
          steps: [define, start, stop, snapshot_create, snapshot_revert, snapshot_delete, undefine]
  delegate_to: localhost
  register: oq

- name: Live-migrate a throwaway domain to a second host
  vqual.qualification.libvirt_probe:
    uri: qemu+tcp://127.0.0.21/system
    requests:
      - key: migrate
        method: oq_migrate
        args:
          destination: qemu+tcp://127.0.0.22/system
  delegate_to: localhost
"""

RETURN = r"""
observations:
  description: One observation per request key.
  returned: always
  type: dict
  sample:
    "libvirt:version:{}":
      value: {type: TEST, hypervisor_version: "0.0.2", libvirt_version: "9.0.0"}
      raw: '{"getLibVersion": 9000000, "getType": "TEST", "getVersion": 2}'
      method: libvirt getType/getVersion/getLibVersion test:///default
      error: null
      not_executed: null
      actions: []
  contains:
    value:
      description:
        - The observed value (JSON); its shape depends on the method.
        - "For C(oq_lifecycle): C({vm, steps: {<step>: {verdict, reason, duration_ms}},
          cleanup: {verdict, reason}, passed})."
      type: raw
      returned: always
    raw:
      description: Raw API output a reviewer can check the value against (capabilities XML,
        the C(getInfo) list, a domain's XML); null when the value is the API's answer.
      type: str
      returned: always
    method:
      description: How it was observed, naming the libvirt API calls and the endpoint.
      type: str
      returned: always
    error:
      description: Why the observation could not be made; null when it was made.
      type: str
      returned: always
    not_executed:
      description: Why the step was not performed (check mode, or the driver cannot do it);
        null when it was performed.
      type: str
      returned: always
    actions:
      description:
        - "State-changing steps performed, each C({name, target, before, after, verdict,
          reason, started, finished}) with UTC times; empty for IQ methods."
      type: list
      elements: dict
      returned: always
probe_seconds:
  description: Seconds the module spent in the libvirt session.
  returned: always
  type: float
  sample: 0.012
"""

import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.vqual.qualification.plugins.module_utils.vqual_platform import run_probe


class LibvirtProbe:
    """Runs the requested observations in one libvirt session; a thin shell around the
    platform's probe."""

    def __init__(self, module):
        self.module = module

    def run(self):
        params = self.module.params
        started = time.monotonic()
        # The endpoint as a target's host variables name it; a password in the URI is masked
        # wherever Ansible shows this task, the URI itself stays visible (evidence names it).
        host_vars = {"vqual_libvirt_uri": params["uri"],
                     "vqual_libvirt_domain_type": params["domain_type"]}
        observations, changed = run_probe(
            self.module, "libvirt", host_vars, params["requests"], run_id=params["run_id"],
            state_dir=Path(params["state_dir"]) if params["state_dir"] else None,
        )
        return {
            "changed": changed,
            "observations": observations,
            "probe_seconds": round(time.monotonic() - started, 4),
        }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uri=dict(type="str", required=True, fallback=(env_fallback, ["VQUAL_LIBVIRT_URI"])),
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
            run_id=dict(type="str"),
            state_dir=dict(type="path"),
            domain_type=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**LibvirtProbe(module).run())


if __name__ == "__main__":
    main()
