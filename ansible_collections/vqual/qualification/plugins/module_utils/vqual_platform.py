# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0
"""What vqual's platform modules share: connection options, opening an adapter, one-line errors.

The modules run on the controller and import the installed ``qualification`` package with a
guard, so a missing package gives one clear message instead of a traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    from qualification.errors import BadInputError, NotSupported, PlatformError, missing_extra
    from qualification.platforms.base import secrets_of

    HAS_VQUAL = True
    VQUAL_IMPORT_ERROR = None
except ImportError:
    HAS_VQUAL = False
    VQUAL_IMPORT_ERROR = traceback.format_exc()

    class PlatformError(Exception):  # placeholders so except clauses stay valid
        pass

    class NotSupported(PlatformError):
        pass

    class BadInputError(Exception):
        pass


def platform_argument_spec():
    """Connection options of every platform module (see doc fragment ``platform``)."""
    return dict(
        platform=dict(
            type="str", required=True, choices=["libvirt", "vsphere", "hyperv"],
            fallback=(env_fallback, ["VQUAL_PLATFORM"]),
        ),
        uri=dict(type="str", fallback=(env_fallback, ["VQUAL_LIBVIRT_URI"])),
        state_dir=dict(type="path"),
        hostname=dict(type="str", fallback=(env_fallback, ["VMWARE_HOST"])),
        port=dict(type="int", fallback=(env_fallback, ["VMWARE_PORT"])),
        username=dict(type="str", fallback=(env_fallback, ["VMWARE_USER", "VMWARE_USERNAME"])),
        password=dict(
            type="str", no_log=True, fallback=(env_fallback, ["VMWARE_PASSWORD"])
        ),
        validate_certs=dict(type="bool", fallback=(env_fallback, ["VMWARE_VALIDATE_CERTS"])),
        ca_file=dict(type="path"),
        datacenter=dict(type="str"),
        cluster=dict(type="str"),
        winrm_scheme=dict(type="str", choices=["https", "http"], default="https"),
        winrm_transport=dict(
            type="str", default="ntlm", choices=["ntlm", "kerberos", "credssp", "basic"]
        ),
    )


def require_vqual(module):
    if not HAS_VQUAL:
        module.fail_json(
            msg=missing_required_lib("vqual (the qualification package)"),
            exception=VQUAL_IMPORT_ERROR,
        )


def open_platform(module, action, readonly=False):
    """The adapter for the module's ``platform``; fails the task (one line) if it cannot connect."""
    require_vqual(module)
    params = module.params
    try:
        if params["platform"] == "libvirt":
            if not params["uri"]:
                module.fail_json(msg="%s failed: uri (or VQUAL_LIBVIRT_URI) is required for libvirt" % action)
            for secret in secrets_of(params["uri"]):
                module.no_log_values.add(secret)
            from qualification.platforms.libvirt import LibvirtPlatform

            return LibvirtPlatform(params["uri"], readonly=readonly, state_dir=params["state_dir"])
        if params["platform"] == "hyperv" and not readonly:
            # The Hyper-V adapter's operations never ran against Hyper-V (only a stand-in was
            # available), so only the read-only modules accept platform hyperv.
            module.fail_json(msg="%s failed: platform hyperv supports only the read-only modules" % action)
        missing = [name for name in ("hostname", "username", "password") if not params[name]]
        if missing:
            module.fail_json(
                msg="%s failed: %s required for %s (or VMWARE_HOST, VMWARE_USER, VMWARE_PASSWORD)"
                % (action, ", ".join(missing), params["platform"])
            )
        validate = params["validate_certs"]
        if params["platform"] == "hyperv":
            from qualification.platforms.hyperv import Endpoint as WinrmEndpoint
            from qualification.platforms.hyperv import HypervPlatform

            scheme = params["winrm_scheme"]
            return HypervPlatform(
                WinrmEndpoint(
                    host=params["hostname"],
                    username=params["username"],
                    password=params["password"],
                    port=params["port"] or (5986 if scheme == "https" else 5985),
                    scheme=scheme,
                    transport=params["winrm_transport"],
                    validate_certs=True if validate is None else validate,
                    ca_file=params["ca_file"],
                )
            )
        from qualification.platforms.vsphere import Endpoint, VspherePlatform

        return VspherePlatform(
            Endpoint(
                host=params["hostname"],
                username=params["username"],
                password=params["password"],
                port=params["port"] or 443,
                validate_certs=True if validate is None else validate,
                ca_file=params["ca_file"],
                datacenter=params["datacenter"],
                cluster=params["cluster"],
            )
        )
    except (PlatformError, BadInputError) as exc:
        module.fail_json(msg="%s failed: %s" % (action, exc.one_line()))
    except ImportError as exc:
        # A platform library the site did not install: name the extra that adds it.
        missing = missing_extra(exc)
        module.fail_json(msg="%s failed: %s" % (action, missing.one_line() if missing else exc),
                         exception=traceback.format_exc())


def fail(module, action, exc):
    """Fail the task with ``<action> failed: <one line>``."""
    text = exc.one_line() if hasattr(exc, "one_line") else " ".join(str(exc).split())
    module.fail_json(msg="%s failed: %s" % (action, text))
