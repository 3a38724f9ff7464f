"""Evidence: canonical JSON records, the hash-chained bundle writer, reader and verifier."""

from qualification.evidence.bundle import (
    BundleWriter,
    append_signature,
    is_sealed_path,
    latest_seal,
)
from qualification.evidence.canonical import (
    CanonicalError,
    canonical_bytes,
    canonical_record_bytes,
    normalize_for_record,
)
from qualification.evidence.reader import Bundle, Record, read_bundle
from qualification.evidence.records import utc_now
from qualification.evidence.verify import VerificationResult, verify_bundle

__all__ = [
    "Bundle",
    "BundleWriter",
    "CanonicalError",
    "Record",
    "VerificationResult",
    "append_signature",
    "canonical_bytes",
    "canonical_record_bytes",
    "is_sealed_path",
    "latest_seal",
    "normalize_for_record",
    "read_bundle",
    "utc_now",
    "verify_bundle",
]
