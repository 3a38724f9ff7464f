"""vqual: qualification of virtual infrastructure in GxP-regulated IT, as code."""

__version__ = "0.1.0"
#: Evidence bundle format version written into every record.
FORMAT_VERSION = 2
