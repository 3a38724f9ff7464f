"""The VMware vSphere platform: its plug-in (``plugin``), endpoint (``endpoint``), adapter
(``adapter``), probe table (``observations``), OQ protocol (``oq``), the rolling patch's
stand-in executor (``patch``) and cleanup (``cleanup``).

Nothing is imported here: the registry loads ``plugin`` without pyVmomi.
"""
