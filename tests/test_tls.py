"""TLS built in, with a test CA made here by the openssl command: curl, wss, reload."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TOP, check_jpeg, timeout
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(where: Path) -> None:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pyimagestream test CA",
        cwd=where,
    )  # fmt: skip


def make_leaf(where: Path, name: str) -> None:
    """A certificate for 127.0.0.1 signed by the test CA, as NAME.pem / NAME.key."""
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=where,
    )  # fmt: skip
    (where / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", f"{name}.pem", cwd=where,
    )  # fmt: skip


def served_certificate(port: int, cafile: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def fingerprint(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


async def test_https_wss_and_certificate_reload(start_daemon: Any, tmp_path: Path) -> None:
    """curl --cacert and wss: work; a replaced certificate is served after SIGHUP, viewers stay."""
    make_ca(tmp_path)
    make_leaf(tmp_path, "first")
    (tmp_path / "live.pem").write_bytes((tmp_path / "first.pem").read_bytes())
    (tmp_path / "live.key").write_bytes((tmp_path / "first.key").read_bytes())
    config = tmp_path / "c.yaml"
    config.write_text(
        f"server: {{listen: 127.0.0.1, port: 0, tls: {{certificate: {tmp_path}/live.pem,"
        f" key: {tmp_path}/live.key}}}}\nauth: {{users_file: {tmp_path}/none}}\n"
    )
    rd = await start_daemon(config.read_text())
    rd.daemon.config_path = config  # so that SIGHUP re-reads this file
    url = f"https://127.0.0.1:{rd.port}/snapshot.jpg"
    result = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "-D", "-", "-o", str(tmp_path / "s.jpg"), "--cacert",
         str(tmp_path / "ca.pem"), url],
        capture_output=True, text=True, timeout=timeout(30), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "strict-transport-security: max-age=" in result.stdout.lower()
    check_jpeg((tmp_path / "s.jpg").read_bytes())
    old_tls = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "--tls-max", "1.1", "--cacert", str(tmp_path / "ca.pem"), url],
        capture_output=True, text=True, timeout=timeout(30), check=False,
    )  # fmt: skip
    assert old_tls.returncode != 0  # TLS 1.1 and older are refused
    served = await asyncio.to_thread(served_certificate, rd.port, tmp_path / "ca.pem")
    assert served == fingerprint(tmp_path / "first.pem")

    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    async with connect(
        f"wss://127.0.0.1:{rd.port}/websocket", ssl=context, open_timeout=timeout(10)
    ) as ws:
        await ws.send("next")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))  # type: ignore[arg-type]
        # The renewal: new files in place, then `systemctl reload` (SIGHUP).
        make_leaf(tmp_path, "second")
        os.replace(tmp_path / "second.pem", tmp_path / "live.pem")
        os.replace(tmp_path / "second.key", tmp_path / "live.key")
        os.kill(os.getpid(), signal.SIGHUP)
        expected = fingerprint(tmp_path / "live.pem")
        async with asyncio.timeout(timeout(10)):
            while (
                await asyncio.to_thread(served_certificate, rd.port, tmp_path / "ca.pem")
                != expected
            ):
                await asyncio.sleep(0.1)
        for _ in range(5):  # the viewer that was watching is still served
            await ws.send("next")
            check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))  # type: ignore[arg-type]
    assert (
        hashlib.sha256(expected).digest()
        != hashlib.sha256(fingerprint(tmp_path / "first.pem")).digest()
    )


async def test_a_broken_renewal_keeps_the_running_certificate(
    start_daemon: Any, tmp_path: Path
) -> None:
    """A key that does not match the new certificate: reload refused, old one still served."""
    make_ca(tmp_path)
    make_leaf(tmp_path, "first")
    make_leaf(tmp_path, "other")
    original = fingerprint(tmp_path / "first.pem")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"server: {{listen: 127.0.0.1, port: 0, tls: {{certificate: {tmp_path}/first.pem,"
        f" key: {tmp_path}/first.key}}}}\nauth: {{users_file: {tmp_path}/none}}\n"
    )
    rd = await start_daemon(config.read_text())
    rd.daemon.config_path = config
    (tmp_path / "first.pem").write_bytes((tmp_path / "other.pem").read_bytes())
    await rd.daemon.reload()
    served = await asyncio.to_thread(served_certificate, rd.port, tmp_path / "ca.pem")
    assert served == original


async def test_wss_takes_the_https_page_origin_only(start_daemon: Any, tmp_path: Path) -> None:
    """Over TLS a browser's page is https://host:port: that origin opens wss:, http:// not."""
    make_ca(tmp_path)
    make_leaf(tmp_path, "leaf")
    rd = await start_daemon(
        f"server: {{listen: 127.0.0.1, port: 0, tls: {{certificate: {tmp_path}/leaf.pem,"
        f" key: {tmp_path}/leaf.key}}}}\nauth: {{users_file: {tmp_path}/none}}\n"
    )
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    url = f"wss://127.0.0.1:{rd.port}/websocket"
    page = f"https://127.0.0.1:{rd.port}"
    async with connect(url, ssl=context, origin=page, open_timeout=timeout(10)) as ws:  # type: ignore[arg-type]
        await ws.send("next")
        check_jpeg(await asyncio.wait_for(ws.recv(), timeout(10)))  # type: ignore[arg-type]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            url,
            ssl=context,
            origin=f"http://127.0.0.1:{rd.port}",
            open_timeout=timeout(10),  # type: ignore[arg-type]
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_certbot_deploy_hook_installs_and_reloads(tmp_path: Path) -> None:
    """The documented certbot hook copies a renewal in place and the daemon serves it."""
    make_ca(tmp_path)
    make_leaf(tmp_path, "first")
    make_leaf(tmp_path, "second")
    lineage, target = tmp_path / "live", tmp_path / "tls"
    lineage.mkdir()
    target.mkdir()
    for name, pem in (("first", target), ("second", lineage)):
        (pem / "fullchain.pem").write_bytes((tmp_path / f"{name}.pem").read_bytes())
        (pem / "privkey.pem").write_bytes((tmp_path / f"{name}.key").read_bytes())
    config = tmp_path / "c.yaml"
    config.write_text(
        "server: {listen: 127.0.0.1, port: 0, tls: "
        f"{{certificate: {target}/fullchain.pem, key: {target}/privkey.pem}}}}\n"
        f"auth: {{users_file: {tmp_path}/none}}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pyimagestreamd", "--config", str(config),
        cwd=TOP, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await _run_hook(proc, tmp_path, lineage, target)
    finally:
        proc.terminate()
        await proc.wait()


async def _run_hook(
    proc: asyncio.subprocess.Process, tmp_path: Path, lineage: Path, target: Path
) -> None:
    assert proc.stderr is not None
    async with asyncio.timeout(timeout(15)):
        while not (match := re.search(rb"serving on port (\d+)", await proc.stderr.readline())):
            pass
    port = int(match.group(1))
    first = await asyncio.to_thread(served_certificate, port, tmp_path / "ca.pem")
    assert first == fingerprint(tmp_path / "first.pem")
    env = {
        **os.environ,
        "RENEWED_LINEAGE": str(lineage),
        "PYIMAGESTREAM_TLS_DIR": str(target),
        "PYIMAGESTREAM_TLS_GROUP": str(os.getgid()),
        "PYIMAGESTREAM_RELOAD": f"kill -HUP {proc.pid}",
    }
    hook = TOP / "tools" / "certbot-deploy-hook"
    await asyncio.to_thread(subprocess.run, [str(hook)], env=env, check=True, timeout=timeout(30))
    assert (target / "privkey.pem").stat().st_mode & 0o777 == 0o640
    expected = fingerprint(tmp_path / "second.pem")
    async with asyncio.timeout(timeout(10)):
        while await asyncio.to_thread(served_certificate, port, tmp_path / "ca.pem") != expected:
            await asyncio.sleep(0.1)


async def test_a_silent_client_does_not_hold_up_other_handshakes(
    start_daemon: Any, tmp_path: Path
) -> None:
    """Clients that connect and send nothing wait out their handshake bound alone: another
    client's TLS handshake is answered meanwhile, and a shutdown closes them at once."""
    make_ca(tmp_path)
    make_leaf(tmp_path, "leaf")
    rd = await start_daemon(
        f"server: {{listen: 127.0.0.1, port: 0, request_timeout: {timeout(60)},"
        f" tls: {{certificate: {tmp_path}/leaf.pem, key: {tmp_path}/leaf.key}}}}\n"
    )
    silent = [socket.create_connection(("127.0.0.1", rd.port)) for _ in range(3)]
    server = rd.daemon.server
    async with asyncio.timeout(timeout(10)):
        while len(server.connections) < 3:
            await asyncio.sleep(0.01)
    # Well inside the 60 s the silent ones may take: with the handshakes in the accept
    # loop, this one waited for all three.
    der = await asyncio.wait_for(
        asyncio.to_thread(served_certificate, rd.port, tmp_path / "ca.pem"), timeout(10)
    )
    assert der == fingerprint(tmp_path / "leaf.pem")
    # Shutdown does not wait for them either: each is closed at once.
    assert await rd.stop() == 0
    for sock in silent:
        with sock:
            sock.settimeout(timeout(10))
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""
