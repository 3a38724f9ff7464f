"""The Microsoft Hyper-V platform (WinRM): its plug-in (``plugin``), endpoint (``endpoint``),
adapter (``adapter``) and probe table (``observations``).

Nothing is imported here: the registry loads ``plugin`` without pywinrm.
"""
