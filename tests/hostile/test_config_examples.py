"""Documents the config fuzzer found crashing the loader, kept as fixed examples.

Each one once escaped as another exception or as a message of more than one line.
"""

from __future__ import annotations

import pytest

from pyimagestreamd.config import ConfigError, parse_config

FOUND = [
    # PyYAML's constructors on explicitly tagged empty scalars: IndexError, AttributeError.
    ("!!float ", "invalid YAML value: string index out of range"),
    ("!!timestamp ", "invalid YAML value: 'NoneType' object has no attribute 'groupdict'"),
    ("log_level: !!int ''\n", "invalid YAML value: string index out of range"),
    # A key holding a newline made the message two lines.
    ("? '\n\n  '\n: null\n", "'\\n': unknown key: expected one of server, auth, log_level, cameras (line 1)"),
    ("cameras: {\"a\\nb\": {}}\n", "cameras.'a\\nb': invalid value 'a\\nb': expected a camera name of letters, digits, '-' and '_' (at most 64) (line 1)"),
    ("server: {\"x\\0\": 1}\n", "server.'x\\x00': unknown key: expected one of listen, port, web_root, max_clients, allowed_origins, snapshot_timeout, allowed_hosts, max_clients_per_address, max_pending_per_address, trusted_proxies, send_timeout, request_timeout, idle_timeout, frame_ancestors, tls (line 1)"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), FOUND)
def test_fuzz_found_document_is_one_line_error(text: str, message: str) -> None:
    """Each document the fuzzer found is now exactly this one-line ConfigError."""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == message
