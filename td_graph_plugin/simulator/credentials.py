"""An app registration's certificate credential, as the fake login service checks client assertions."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["CertificateCredential"]


class CertificateCredential:
    """A registered certificate: public key and the thumbprints MSAL puts in x5t / x5t#S256."""

    def __init__(self, pem: str | bytes):
        data = pem.encode() if isinstance(pem, str) else pem
        certs = x509.load_pem_x509_certificates(data)
        if not certs:
            raise ValueError("certificate_pem holds no CERTIFICATE block")
        cert = certs[0]
        der = cert.public_bytes(serialization.Encoding.DER)
        self.public_key = cert.public_key()
        self.sha1 = hashlib.sha1(der).digest()
        self.sha256 = hashlib.sha256(der).digest()
        self.thumbprint = self.sha1.hex().upper()
