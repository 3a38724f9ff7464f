"""The libvirt/KVM platform: its plug-in (``plugin``), endpoint and adapter (``adapter``),
probe table (``observations``), OQ on booted guests (``guest_oq``), the cluster view and patch
executor of a rolling patch (``cluster``, ``patch``) and cleanup (``cleanup``).

Nothing is imported here: the registry loads ``plugin`` without libvirt-python.
"""
