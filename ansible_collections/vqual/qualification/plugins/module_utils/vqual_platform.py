# -*- coding: utf-8 -*-
# Copyright: vqual contributors
# Apache License 2.0
"""What vqual's platform modules share: connection options, opening an adapter, one-line errors.

The one file through which the collection's modules reach the ``qualification`` package
(a test holds this): the modules run on the controller and import it here with a guard, so a
missing package gives one clear message instead of a traceback. Which platform answers is the
package's platform registry (entry point group ``vqual.platforms``), never a list here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    from qualification.errors import BadInputError, NotSupported, PlatformError, missing_extra
    from qualification.platforms import registry
    from qualification.platforms.base import BadArgs

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

    class BadArgs(ValueError):
        pass


def platform_argument_spec():
    """Connection options of every platform module (see doc fragment ``platform``)."""
    return dict(
        # Any registered platform plug-in; open_platform names the known ones.
        platform=dict(type="str", required=True, fallback=(env_fallback, ["VQUAL_PLATFORM"])),
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


def plugin_for(module, action):
    """The registered plug-in of the module's ``platform``; fails the task (one line, naming
    the known platforms) for an unknown name."""
    require_vqual(module)
    try:
        return registry.get(module.params["platform"])
    except BadInputError as exc:
        module.fail_json(msg="%s failed: %s" % (action, exc.one_line()))


def open_platform(module, action, readonly=False):
    """The adapter for the module's ``platform``; fails the task (one line) if it cannot connect."""
    plugin = plugin_for(module, action)
    for secret in plugin.module_secrets(module.params):
        module.no_log_values.add(secret)
    try:
        return plugin.connect_module(module.params, readonly=readonly)
    except (PlatformError, BadInputError) as exc:
        module.fail_json(msg="%s failed: %s" % (action, exc.one_line()))
    except ImportError as exc:
        # A platform library the site did not install: name the extra that adds it.
        missing = missing_extra(exc)
        module.fail_json(msg="%s failed: %s" % (action, missing.one_line() if missing else exc),
                         exception=traceback.format_exc())


def migration_state(module, platform, name, destination):
    """``(there, facts, shown)`` for ``vm_migrate``: whether the VM is at ``destination``,
    its facts, and the destination as the diff shows it (the plug-in's rule)."""
    return plugin_for(module, "vm_migrate").migration_state(platform, name, destination)


def run_probe(module, platform, host_vars, requests, run_id=None, state_dir=None):
    """A platform's probe in one session: ``(observations, changed)``. The endpoint comes from
    ``host_vars`` as the plug-in reads a target's host variables; a password in it is masked.
    Fails the task (one line) for a malformed call (unsafe run id, request without key)."""
    require_vqual(module)
    action = "%s_probe" % platform
    try:
        plugin = registry.get(platform)
        endpoint = plugin.endpoint(host_vars)
    except BadInputError as exc:
        module.fail_json(msg="%s failed: %s" % (action, exc.one_line()))
    for secret in plugin.endpoint_secrets(endpoint):
        module.no_log_values.add(secret)
    try:
        return plugin.run_probe(
            endpoint, requests, run_id=run_id, check_mode=module.check_mode, state_dir=state_dir
        )
    except BadArgs as exc:
        module.fail_json(msg="%s failed: %s" % (action, exc))
    except NotSupported as exc:
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
