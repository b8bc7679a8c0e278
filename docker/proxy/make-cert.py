"""Write a self-signed TLS certificate for the proxy into DIR unless one is there already.

    python make-cert.py DIR [HOSTNAME ...]

Supply your own certificate by putting ``tls.crt`` and ``tls.key`` into the ``certs`` volume
(or DIR) before the first start; it is then left alone.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def main() -> int:
    """Create DIR/tls.crt and DIR/tls.key when either is missing."""
    directory = Path(sys.argv[1])
    names = sys.argv[2:] or ["localhost"]
    cert, key = directory / "tls.crt", directory / "tls.key"
    if cert.exists() and key.exists():
        print(f"keeping the certificate in {directory}")
        return 0
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o640)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    print(f"wrote a self-signed certificate for {', '.join(names)} to {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
