"""The sandbox's TLS: a local CA and a server certificate for 127.0.0.1, made once per installation.

Why HTTPS at all: the vonage SDK hard-codes `https://{api_host}`, so a local Voice API must speak TLS and
the SDK must trust it. The SDK (requests) lets `REQUESTS_CA_BUNDLE` win over any per-session setting, so
the sandbox writes a bundle = the CAs already trusted (from the file the environment names, or certifi)
+ the sandbox CA, and `Sandbox.trust()` points `REQUESTS_CA_BUNDLE` at it: every other HTTPS request
keeps working.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
# `--vonage-hostnames`: the names Vonage's clients hard-code (vonage-platform.md section 9: api.nexmo.com for
# Voice and applications, rest.nexmo.com for numbers, the regional api-*.vonage.com of the application
# `region` values and the .NET defaults, the 2021 data-centre hosts), plus wildcards for any other region.
VONAGE_HOSTNAMES = (
    "api.nexmo.com", "rest.nexmo.com", "api.vonage.com",
    "api-us.vonage.com", "api-eu.vonage.com", "api-ap.vonage.com",
    "api-us-3.vonage.com", "api-us-4.vonage.com", "api-eu-3.vonage.com", "api-eu-4.vonage.com",
    "api-ap-3.vonage.com", "api-ap-4.vonage.com", "api-us.nexmo.com",
    "api-us-1.nexmo.com", "api-us-2.nexmo.com", "api-eu-1.nexmo.com", "api-eu-2.nexmo.com", "api-sg-1.nexmo.com",
    "*.vonage.com", "*.nexmo.com",
)
BEGIN_MARK = "# >>> labkit sandbox CA >>>"
END_MARK = "# <<< labkit sandbox CA <<<"


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated material (all under `<home>/tls`)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving the sandbox certificate (TLS 1.2+)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        # No TLS 1.3 session tickets. A client with a reader thread (websockets' sync client starts one before
        # it writes its upgrade request) read the tickets that follow the handshake while its other thread wrote
        # the request on the same OpenSSL connection, which is not thread-safe: now and then the request never
        # reached the wire (597 bytes sent = the handshake alone; the sandbox waited for it, the client for the
        # answer, until the time-out). Measured on phone audio sockets: a stall in each run of 400 handshakes
        # (after 7 to 253); without tickets none in 1200. Nothing here resumes sessions: loopback, a full
        # handshake costs a few ms.
        ctx.num_tickets = 0
        return ctx


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Serialise first-time generation between processes (two notebooks starting at once)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _still_valid(cert_path: Path, key_path: Path) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return False
    now = dt.datetime.now(dt.timezone.utc)
    return cert.not_valid_after_utc - now > RENEW_BEFORE


def ensure_tls(home: Path, *, vonage_hostnames: bool = False) -> TlsFiles:
    """Create (first run) or reuse the CA and server certificate under `home/tls`.

    The server certificate is re-issued when it is close to expiry, the CA was replaced or its names
    changed; the CA itself lives ten years, so a bundle built once keeps working across runs. With
    `vonage_hostnames` the server certificate (kept apart, `server-vonage.pem`) also covers Vonage's
    host names, for clients that cannot be pointed anywhere else.
    """
    folder = Path(home) / "tls"
    stem = "server-vonage" if vonage_hostnames else "server"
    files = TlsFiles(folder / "ca.pem", folder / "ca.key", folder / f"{stem}.pem", folder / f"{stem}.key")
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    if vonage_hostnames:
        names += [x509.DNSName(name) for name in VONAGE_HOSTNAMES]
    with home_lock(Path(home)):
        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.timezone.utc)
        if not _still_valid(files.ca_cert, files.ca_key):
            ca_key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labkit sandbox local CA")])
            ca_cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True, content_commitment=False, key_encipherment=False,
                        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                        encipher_only=False, decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            _write_private(files.ca_key, _key_pem(ca_key))
            _write_public(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
            files.server_cert.unlink(missing_ok=True)
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        reissue = not _still_valid(files.server_cert, files.server_key)
        if not reissue:
            server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
            san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            reissue = server.issuer != ca_cert.subject or list(san) != names
        if reissue:
            ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
                .add_extension(
                    x509.SubjectAlternativeName(names),
                    critical=False,
                )
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
                )
                .sign(ca_key, hashes.SHA256())
            )
            _write_private(files.server_key, _key_pem(key))
            _write_public(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    return files


def system_ca_source() -> Path | None:
    """The CA file the environment already trusts: REQUESTS_CA_BUNDLE, SSL_CERT_FILE, else certifi's.

    One this user cannot read is passed over (an environment inherited from another user, e.g. a bundle
    under root's temporary folder when the sandbox runs as `nobody`): the sandbox must still start."""
    for var in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        value = os.environ.get(var)
        if value and os.access(value, os.R_OK) and Path(value).is_file():  # access() first: stat may raise
            return Path(value)
    try:
        import certifi

        return Path(certifi.where())
    except ImportError:
        pass
    default = ssl.get_default_verify_paths().cafile
    return Path(default) if default and Path(default).is_file() else None


def _strip_sandbox_sections(text: str, ca_pem: str) -> str:
    """Drop earlier copies of *this* sandbox CA, so bundles never grow when nested. Other sandboxes'
    CAs stay: two sandboxes (two homes) in one process must both remain trusted."""
    out: list[str] = []
    section: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith(BEGIN_MARK):
            section = []
            continue
        if section is not None and line.startswith(END_MARK):
            if "".join(section).strip() != ca_pem.strip():
                out += [f"{BEGIN_MARK}\n", *section, f"{END_MARK}\n"]
            section = None
            continue
        (out if section is None else section).append(line)
    return "".join(out)


def write_bundle(files: TlsFiles, target: Path) -> Path:
    """Write `target` = the currently trusted CAs + the sandbox CA (atomic replace)."""
    source = system_ca_source()
    base = ""
    ca_pem = files.ca_cert.read_text()
    if source is not None:
        base = _strip_sandbox_sections(source.read_text(errors="replace"), ca_pem)
    if base and not base.endswith("\n"):
        base += "\n"
    text = base + f"{BEGIN_MARK}\n" + ca_pem + f"{END_MARK}\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target
