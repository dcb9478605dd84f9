"""What an address string is: the checks on IP literals that the configuration
(serverconfig.py: listen, trusted_proxies) and the request checks (access.py: Host;
credentials.py: X-Forwarded-For) share, in a module of their own so that the config modules
need not import the request side. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress


def is_ip_literal(text: str) -> bool:
    """True if `text` is an IPv4 or IPv6 address as written (no brackets, no port)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
