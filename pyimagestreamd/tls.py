"""TLS: the certificate and key the listening socket serves, re-read on reload.

Built once at start from `server.tls.certificate` / `server.tls.key` (PEM, e.g. Let's
Encrypt's fullchain.pem and privkey.pem) and handed to the listening socket. `reload()`
(on SIGHUP, from the server's set_config) loads the files again into the same SSLContext:
connections accepted afterwards get the new certificate, open ones keep theirs, so a
certbot renewal drops no viewer. The new pair is first tried on a throwaway context, so a
half-written or mismatched renewal leaves the running certificate in place.

Protocol versions: TLS 1.2 and 1.3 only; Python's default cipher suites (forward secrecy,
AEAD). No I/O beyond reading the two files.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)


class TLSError(OSError):
    """The certificate or key cannot be used; the message is one line.

    An OSError, because to the daemon it is a failure to listen, like a port in use.
    """


def _load(context: ssl.SSLContext, certificate: Path, key: Path) -> None:
    try:
        context.load_cert_chain(certificate, key)
    except FileNotFoundError as exc:
        raise TLSError(f"cannot read {exc.filename}: no such file") from None
    except PermissionError as exc:
        raise TLSError(f"cannot read {exc.filename}: permission denied") from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise TLSError(f"cannot use {certificate} with {key}: {reason}") from None


def _new_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # HTTP/1.1 only: a client that offers h2 must not think it got it.
    context.set_alpn_protocols(["http/1.1"])
    return context


class ServerTLS:
    def __init__(self, certificate: Path, key: Path) -> None:
        self.certificate = certificate
        self.key = key
        self.context = _new_context()
        _load(self.context, certificate, key)

    def reload(self, certificate: Path, key: Path) -> bool:
        """Serve this pair to new connections; False (and logged) if it is unusable."""
        try:
            _load(_new_context(), certificate, key)
        except TLSError as exc:
            log.error("TLS reload refused, keeping the running certificate: %s", exc)
            return False
        _load(self.context, certificate, key)
        self.certificate, self.key = certificate, key
        log.info("TLS certificate reloaded from %s", certificate)
        return True
