# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Connection options of vqual's platform modules (libvirt, vSphere, Hyper-V)."""

    DOCUMENTATION = r"""
options:
  platform:
    description:
      - The hypervisor platform to talk to, the name of a platform plug-in registered with the
        C(qualification) package (entry point group C(vqual.platforms)); it selects the adapter.
        The package ships V(libvirt), V(vsphere) and V(hyperv); an unknown name fails the task
        with one line listing the registered ones.
      - If not set, the value of the environment variable E(VQUAL_PLATFORM) is used.
      - V(hyperv) (WinRM and PowerShell) is accepted by the read-only modules only.
    type: str
    required: true
  uri:
    description:
      - libvirt only. The libvirt connection URI, for example C(qemu:///system) or
        C(qemu+ssh://root@kvm1.example.com/system).
      - If not set, the value of the environment variable E(VQUAL_LIBVIRT_URI) is used.
      - Keep credentials out of the URI (SSH keys, TLS client certificates); a password in it
        anyway is masked in everything the module returns.
    type: str
  state_dir:
    description:
      - libvirt only. vqual's state directory, where maintenance markers of libvirt hosts are
        kept. Default E(VQUAL_STATE_DIR), else C($XDG_DATA_HOME/vqual).
    type: path
  hostname:
    description:
      - vSphere and Hyper-V. The vCenter Server, ESXi or Hyper-V host name or address.
      - If not set, the environment variable E(VMWARE_HOST) is used.
    type: str
  port:
    description:
      - vSphere and Hyper-V. The port of the SDK endpoint or the WinRM listener.
      - If not set, the environment variable E(VMWARE_PORT) is used, else 443 (vSphere), 5986
        (Hyper-V over https) or 5985 (Hyper-V over http).
    type: int
  username:
    description:
      - vSphere and Hyper-V. The user name to log in with.
      - If not set, the environment variable E(VMWARE_USER) is used.
    type: str
  password:
    description:
      - vSphere and Hyper-V. The password of O(username). Never returned or logged.
      - If not set, the environment variable E(VMWARE_PASSWORD) is used.
    type: str
  validate_certs:
    description:
      - vSphere and Hyper-V. Verify the endpoint's TLS certificate against the system trust store
        (or O(ca_file)). Set to V(false) only for a lab with self-signed certificates.
      - If not set, the environment variable E(VMWARE_VALIDATE_CERTS) is used, else V(true).
    type: bool
  ca_file:
    description:
      - vSphere and Hyper-V. A PEM file of CA certificates to verify the endpoint with.
    type: path
  datacenter:
    description:
      - vSphere only. The datacenter to work in; default all.
    type: str
  cluster:
    description:
      - vSphere only. The cluster whose hosts count; default every host of the endpoint.
    type: str
  winrm_scheme:
    description:
      - Hyper-V only. V(https) (verified, see O(validate_certs)) or V(http); plain HTTP is an
        explicit opt-out for a lab.
    type: str
    choices: [https, http]
    default: https
  winrm_transport:
    description:
      - Hyper-V only. The WinRM authentication (pywinrm transport).
    type: str
    choices: [ntlm, kerberos, credssp, basic]
    default: ntlm
requirements:
  - vqual (the C(qualification) Python package) on the controller
  - libvirt-python (platform libvirt), pyVmomi (platform vsphere) or pywinrm (platform hyperv)
notes:
  - Runs on the controller; delegate it to C(localhost), as with the VMware collections.
  - Platform errors (wrong password, endpoint unreachable, object not found) fail the task
    with one line naming the operation and the object; the password never appears in it.
"""
