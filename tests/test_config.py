"""Configuration validation: every bad file gets one line naming key, value, expectation, line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyimagestreamd.config import CameraConfig, ConfigError, load_config, parse_config
from pyimagestreamd.schema import SourceOptions
from pyimagestreamd.v4l2config import V4L2Options

TOP = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid_and_matches_code_defaults() -> None:
    """etc/pyimagestream.yaml validates, and every value in it equals the code's default."""
    shipped = load_config(TOP / "etc" / "pyimagestream.yaml")
    code = parse_config("log_level: info\n")
    assert shipped == code


def test_shipped_config_examples_are_valid_when_uncommented() -> None:
    """The commented camera entries in etc/pyimagestream.yaml (webcam, Pi camera, native
    libcamera, RTSP) validate."""
    import re

    lines = (TOP / "etc" / "pyimagestream.yaml").read_text().splitlines()
    entries = ["  " + line[4:] for line in lines if re.match(r"^  # (\S+:$|  )", line)]
    cfg = parse_config("cameras:\n" + "\n".join(entries) + "\n")
    assert [(c.name, c.kind) for c in cfg.cameras] == [
        ("webcam", "v4l2"),
        ("picam", "exec"),
        ("picam-native", "libcamera"),
        ("rtsp", "exec"),
    ]
    assert cfg.cameras[1].options.command[0] == "rpicam-vid"  # type: ignore[attr-defined]


def test_partial_file_takes_defaults() -> None:
    """A file naming one camera and one key gets the defaults for everything else."""
    cfg = parse_config("cameras:\n  aquarium:\n    fps: 5\n")
    cam = cfg.cameras[0]
    assert cam == CameraConfig(name="aquarium", fps=5)
    assert cfg.server.port == 8888


def test_cameras_keep_file_order_and_controls() -> None:
    """Cameras come out in file order; controls keep their order and booleans become 0/1."""
    cfg = parse_config(
        "cameras:\n  b: {source: /dev/video2}\n  a:\n    source: /dev/v4l/by-id/usb-x-video-index0\n"
        "    controls: {brightness: 120, white_balance_automatic: false}\n"
    )
    assert [c.name for c in cfg.cameras] == ["b", "a"]
    assert cfg.cameras[1].options == V4L2Options(
        controls=(("brightness", 120), ("white_balance_automatic", 0))
    )


def test_v4l2_keys_keep_their_meaning_in_existing_files() -> None:
    """A V4L2 camera written before source types had their own keys parses as it did."""
    cam = parse_config(
        "cameras:\n  c:\n    source: /dev/video0\n    format: yuyv\n    yuv_range: full\n"
        "    input: 3\n    controls: {brightness: 5}\n"
    ).cameras[0]
    assert (cam.kind, cam.source) == ("v4l2", "/dev/video0")
    assert cam.options == V4L2Options("yuyv", "full", 3, (("brightness", 5),))


def test_exec_command_as_a_string_is_split_like_a_shell_does() -> None:
    """`command:` as one string becomes argv by shell rules, without running a shell."""
    from pyimagestreamd.pipelineconfig import PipelineOptions

    cam = parse_config(
        "cameras:\n  pi:\n    source: exec\n"
        "    command: rpicam-vid -t 0 -n --codec mjpeg --annotate 'a b' -o -\n"
    ).cameras[0]
    assert cam.kind == "exec"
    assert cam.options == PipelineOptions(
        command=("rpicam-vid", "-t", "0", "-n", "--codec", "mjpeg", "--annotate", "a b", "-o", "-")
    )


def test_credentials_in_the_url_are_kept_apart_and_redacted() -> None:
    """user:password@ moves out of the URL; --dump-config shows the user, not the password."""
    from pyimagestreamd.netcamconfig import NetworkOptions

    cfg = parse_config("cameras:\n  r: {source: 'https://me:p%40ss@pi.local:8888/stream.mjpg'}\n")
    cam = cfg.cameras[0]
    assert (cam.kind, cam.source) == ("http", "https://pi.local:8888/stream.mjpg")
    assert cam.options == NetworkOptions(username="me", password="p@ss")
    assert "p@ss" not in repr(cam)
    dumped = cfg.to_dict()["cameras"]["r"]
    assert (dumped["username"], dumped["password"]) == ("me", "***")


def test_test_pattern_has_no_source_keys() -> None:
    """The test pattern's own section is empty: its options are the base type."""
    cam = parse_config("cameras:\n  t: {}\n").cameras[0]
    assert (cam.kind, cam.options) == ("testpattern", SourceOptions())


def test_relative_web_root_resolves_against_config_folder(tmp_path: Path) -> None:
    """server.web_root relative to the config file's folder, not the working directory."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<!doctype html>")
    (tmp_path / "c.yaml").write_text("server: {web_root: site}\n")
    assert load_config(tmp_path / "c.yaml").server.web_root == tmp_path / "site"


BAD = [
    ("server: {port: 70000}\n", "server.port: invalid value 70000: expected an integer 0..65535 (line 1)"),
    ("server:\n  port: http\n", "server.port: invalid value 'http': expected an integer 0..65535 (line 2)"),
    ("server:\n  prot: 80\n", "server.prot: unknown key: expected one of listen, port, web_root, max_clients, allowed_origins, snapshot_timeout, allowed_hosts, max_clients_per_address, max_pending_per_address, trusted_proxies, send_timeout, request_timeout, idle_timeout, frame_ancestors, tls (line 2)"),
    ("colour: red\n", "colour: unknown key: expected one of server, auth, log_level, cameras (line 1)"),
    ("log_level: loud\n", "log_level: invalid value 'loud': expected one of debug, info, warning, error (line 1)"),
    ("cameras:\n  c:\n    fps: x\n", "cameras.c.fps: invalid value 'x': expected an integer 1..240 (line 3)"),
    ("cameras:\n  c:\n    fps: yes\n", "cameras.c.fps: invalid value True: expected an integer 1..240 (line 3)"),
    ("cameras:\n  c:\n    fps: 0\n", "cameras.c.fps: invalid value 0: expected an integer 1..240 (line 3)"),
    ("cameras:\n  c:\n    width: 641\n", "cameras.c.width: invalid value 641: expected an even number of pixels (line 3)"),
    ("cameras:\n  c:\n    quality: 101\n", "cameras.c.quality: invalid value 101: expected an integer 1..100 (line 3)"),
    ("cameras:\n  c:\n    stop_delay: -1\n", "cameras.c.stop_delay: invalid value -1: expected a number of seconds 0..3600 (line 3)"),
    ("cameras:\n  c:\n    stop_delay: .nan\n", "cameras.c.stop_delay: invalid value nan: expected a number of seconds 0..3600 (line 3)"),
    ("cameras:\n  c:\n    source: video0\n", "cameras.c.source: invalid value 'video0': expected 'testpattern', a V4L2 device path such as /dev/video0, 'exec' (with a command), an http:// or https:// URL or 'libcamera' (optionally 'libcamera:<camera id or index>') (line 3)"),
    ("cameras:\n  c:\n    source: /dev/video0\n    format: h264\n", "cameras.c.format: invalid value 'h264': expected one of auto, mjpeg, yuyv, nv12, yu12 (line 4)"),
    ("cameras:\n  c:\n    source: /dev/video0\n    resolution: 1080p\n", "cameras.c.resolution: unknown key: expected one of source, width, height, fps, quality, stop_delay, format, yuv_range, input, controls (line 4)"),
    ("cameras:\n  c:\n    resolution: 1080p\n", "cameras.c.resolution: unknown key: expected one of source, width, height, fps, quality, stop_delay (line 3)"),
    ("cameras:\n  c:\n    format: mjpeg\n", "cameras.c.format: unknown key for a testpattern source (format is a V4L2 key): expected one of source, width, height, fps, quality, stop_delay (line 3)"),
    ("cameras:\n  c:\n    source: 7\n", "cameras.c.source: invalid value 7: expected 'testpattern', a V4L2 device path such as /dev/video0, 'exec' (with a command), an http:// or https:// URL or 'libcamera' (optionally 'libcamera:<camera id or index>') (line 3)"),
    ("cameras:\n  c: {source: exec}\n", "cameras.c.command: invalid value None: expected a command: a list of arguments or one string split like a shell does (no shell runs)"),
    ("cameras:\n  c:\n    source: exec\n    command: [ffmpeg, 3]\n", "cameras.c.command: invalid value 3: expected arguments that are strings without NUL (line 4)"),
    ("cameras:\n  c:\n    source: exec\n    command: \"rpicam-vid 'x\"\n", "cameras.c.command: invalid value \"rpicam-vid 'x\": expected a command: a list of arguments or one string split like a shell does (no shell runs); No closing quotation (line 4)"),
    ("cameras:\n  c: {source: exec, command: x, term_timeout: 9}\n", "cameras.c.term_timeout: invalid value 9: expected a number of seconds 0..4 (line 2)"),
    ("cameras:\n  c: {source: 'http://u:pw@cam/x', password: p2}\n", "cameras.c.password: invalid value '...': expected credentials in one place: in the URL or in username/password, not both (line 2)"),
    ("cameras:\n  c: {source: 'http://cam/x', username: 'a:b'}\n", "cameras.c.username: invalid value 'a:b': expected a user name without ':' (line 2)"),
    ("cameras:\n  c: {source: 'http://cam/x', password: pw}\n", "cameras.c.password: invalid value '***': expected a username with it (line 2)"),
    ("cameras:\n  c: {source: 'http://u:pw@:80/x'}\n", "cameras.c.source: invalid value 'http://:80/x': expected an http:// or https:// URL with a host (line 2)"),
    ("cameras:\n  c: 5\n", "cameras.c: invalid value 5: expected a mapping (line 2)"),
    ("cameras:\n  c: {source: /dev/video0, controls: {Brightness: 3}}\n", "cameras.c.controls.Brightness: invalid value 'Brightness': expected a control name (line 2)"),
    ("cameras:\n  c:\n    source: /dev/video0\n    controls: {brightness: high}\n", "cameras.c.controls.brightness: invalid value 'high': expected an integer -2147483648..2147483647 (line 4)"),
    ("cameras:\n  c:\n    source: /dev/video0\n    input: 256\n", "cameras.c.input: invalid value 256: expected an integer 0..255 (line 4)"),
    ("cameras:\n  'my cam': {}\n", "cameras.my cam: invalid value 'my cam': expected a camera name of letters, digits, '-' and '_' (at most 64) (line 2)"),
    ("cameras: {}\n", "cameras: invalid value {}: expected a mapping of camera names to settings (line 1)"),
    ("cameras: [a, b]\n", "cameras: invalid value ['a', 'b']: expected a mapping of camera names to settings (line 1)"),
    ("server:\n  allowed_origins: example.org\n", "server.allowed_origins: invalid value 'example.org': expected a list of origins (line 2)"),
    ("server:\n  allowed_origins: [example.org]\n", "server.allowed_origins: invalid value 'example.org': expected origins like 'https://example.org' (scheme://host[:port]) (line 2)"),
    ("log_level: info\nlog_level: debug\n", "log_level: duplicate key (lines 1 and 2)"),
    ("[1, 2]\n", "invalid top level [1, 2]: expected a mapping with 'server', 'cameras', ..."),
    ("", "the file is empty: expected a mapping with 'server', 'cameras', ..."),
    ("# only a comment\n", "the file is empty: expected a mapping with 'server', 'cameras', ..."),
    ("server: {port: 1\n", "invalid YAML: expected ',' or '}', but got '<stream end>' (line 2, column 1)"),
    ("cameras:\n  c:\n  fps: 3\n  - x\n", "invalid YAML: expected <block end>, but found '-' (line 4, column 3)"),
    # Hostile or broken documents (issue 8): bounded, and one line each.
    ("[" * 900, "invalid YAML: nested deeper than 20 levels (line 1)"),
    ("a: " + "{b: " * 21 + "1" + "}" * 21 + "\n", "invalid YAML: nested deeper than 20 levels (line 1)"),
    ("a: &a [*a]\n", "invalid YAML: an alias refers to itself (line 1)"),
    ("x: &x [1]\n" + "".join(f"x{i}: &x{i} [*x{i - 1 if i else ''}]\n" for i in range(25)), "invalid YAML: nested deeper than 20 levels through aliases (line 20)"),
    ("log_level: 2024-13-01\n", "invalid YAML value: month must be in 1..12"),
    ("server: {port: " + "9" * 5000 + "}\n", "invalid YAML value: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit"),
    ("x" * (64 * 1024 + 1), "the file is larger than 64 KiB"),
    ("cameras:\n  c:\n    fps: 5\n    <<: {fps: 30}\n", "cameras.c: merge keys ('<<') are not supported: write the keys out (line 4)"),
    ("d: &d {fps: 30}\ncameras:\n  c: {<<: *d, fps: 5}\n", "cameras.c: merge keys ('<<') are not supported: write the keys out (line 3)"),
    ("<<: {log_level: debug}\nlog_level: info\n", "merge keys ('<<') are not supported: write the keys out (line 1)"),
    ("server: {listen: \"a\\0b\"}\n", "server.listen: invalid value 'a\\x00b': expected an IP address (like 127.0.0.1 or ::) or a host name (line 1)"),
    ("server: {listen: 'my host'}\n", "server.listen: invalid value 'my host': expected an IP address (like 127.0.0.1 or ::) or a host name (line 1)"),
    ("server: {listen: '127.0.0.1 ::1'}\n", "server.listen: invalid value '127.0.0.1 ::1': expected an IP address (like 127.0.0.1 or ::) or a host name (line 1)"),
    ("server: {listen: ''}\n", "server.listen: invalid value '': expected an IP address (like 127.0.0.1 or ::) or a host name (line 1)"),
    ("server: {listen: -x.example}\n", "server.listen: invalid value '-x.example': expected an IP address (like 127.0.0.1 or ::) or a host name (line 1)"),
    ("server: {web_root: /}\n", "server.web_root: invalid value '/': expected a folder of its own, not a system folder (line 1)"),
    ("server: {web_root: /etc}\n", "server.web_root: invalid value '/etc': expected a folder of its own, not a system folder (line 1)"),
    ("server: {web_root: /usr/../proc/}\n", "server.web_root: invalid value '/usr/../proc/': expected a folder of its own, not a system folder (line 1)"),
    ("server: {web_root: /nonexistent-web}\n", "server.web_root: invalid value '/nonexistent-web': expected a folder that contains index.html (line 1)"),
    ("server: {web_root: \"/a\\0b\"}\n", "server.web_root: invalid value '/a\\x00b': expected a folder path or null (line 1)"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_error_message(text: str, message: str) -> None:
    """Each bad file raises ConfigError with exactly the expected one-line message."""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_missing_file_names_path_and_reason(tmp_path: Path) -> None:
    """A missing file is one line with its path and the system's reason."""
    with pytest.raises(ConfigError, match=r"^cannot read .*nope\.yaml: No such file or directory$"):
        load_config(tmp_path / "nope.yaml")


def test_errors_from_a_file_are_prefixed_with_its_path(tmp_path: Path) -> None:
    """Errors found in a file start with the file's path, so the journal line says which file."""
    path = tmp_path / "p.yaml"
    path.write_text("server:\n  port: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (
        str(info.value)
        == f"{path}: server.port: invalid value -1: expected an integer 0..65535 (line 2)"
    )


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 text gets one clear line, not a traceback."""
    path = tmp_path / "b.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_dump_round_trips() -> None:
    """The effective config printed by --dump-config parses back to the same config."""
    import yaml

    cfg = parse_config(
        "cameras:\n  a: {source: /dev/video0, fps: 7, controls: {brightness: 3}}\n"
        "  b: {source: /dev/video1}\n  c: {}\n"
    )
    assert parse_config(yaml.safe_dump(cfg.to_dict())) == cfg


def test_alias_bomb_is_refused_quickly() -> None:
    """A 1 kB "billion laughs" document is refused in one line, without expanding it."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines.append("cameras: *a8")
    text = "\n".join(lines) + "\n"
    assert len(text) < 1024
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == ("invalid YAML: more than 10000 values, aliases expanded (line 4)")


def test_aliases_within_the_limits_still_work() -> None:
    """Anchors and aliases that expand to a few values are fine (shared settings, say)."""
    cfg = parse_config("cameras:\n  a: &cam {width: 640, height: 480}\n  b: *cam\n")
    assert (cfg.cameras[0].width, cfg.cameras[1].height) == (640, 480)


@pytest.mark.parametrize("listen", ["127.0.0.1", "::", "::1", "0.0.0.0", "fe80::1%eth0",
                                    "localhost", "cam.example.org", "cam.example.org."])  # fmt: skip
def test_listen_accepts_addresses_and_host_names(listen: str) -> None:
    """IP literals of both families and host names are valid listen addresses."""
    assert parse_config(f"server: {{listen: '{listen}'}}\n").server.listen == listen


def test_web_root_may_be_a_folder_below_a_system_folder(tmp_path: Path) -> None:
    """Only the system folders themselves are refused: a site folder inside one is fine."""
    (tmp_path / "index.html").write_text("<!doctype html>")
    assert parse_config(f"server: {{web_root: {tmp_path}}}\n").server.web_root == tmp_path
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(ConfigError, match="not a system folder"):
        parse_config(f"server: {{web_root: {tmp_path}/link}}\n")
