"""--list-cameras for libcamera: the tools' output parsed into ready `source: exec` entries.

The sample texts are written from the formats documented for each tool, not captured from a
device here (this machine has no camera): RPICAM_SAMPLE follows the `--list-cameras` example
in Raspberry Pi's camera documentation (raspberrypi/documentation,
accessories/camera/libcamera_options_common.adoc, as updated in its pull request 2587 for the
per-mode frame rates and crops), with libcamera's log lines before it; RPICAM_OLD_SAMPLE is
the earlier format from the same page; CAM_SAMPLE follows the "index: name (id)" lines that
libcamera's `cam -l` prints.
"""

from __future__ import annotations

from pyimagestreamd.libcameras import (
    format_libcamera_list,
    list_libcameras,
    parse_cam_list,
    parse_rpicam_list,
)

RPICAM_SAMPLE = """\
[0:02:11.365417] [1234]  INFO Camera camera_manager.cpp:284 libcamera v0.0.0
Available cameras
-----------------
0 : imx219 [3280x2464] (/base/soc/i2c0mux/i2c@1/imx219@10)
    Modes: 'SRGGB10_CSI2P' : 640x480 [206.65 fps - (1000, 752)/1280x960 crop]
                             1640x1232 [41.85 fps - (0, 0)/3280x2464 crop]
                             1920x1080 [47.57 fps - (680, 692)/1920x1080 crop]
                             3280x2464 [21.19 fps - (0, 0)/3280x2464 crop]
           'SRGGB8' : 640x480 [206.65 fps - (1000, 752)/1280x960 crop]
                      1920x1080 [47.57 fps - (680, 692)/1920x1080 crop]

1 : imx477 [4056x3040] (/base/soc/i2c0mux/i2c@1/imx477@1a)
    Modes: 'SRGGB10_CSI2P' : 1332x990 [120.05 fps - (696, 528)/2664x1980 crop]
           'SRGGB12_CSI2P' : 2028x1080 [50.03 fps - (0, 440)/4056x2160 crop]
"""

RPICAM_OLD_SAMPLE = """\
Available cameras
-----------------
0 : imx219 [3280x2464] (/base/soc/i2c0mux/i2c@1/pca@70/i2c@0/imx219@10)
    Modes: 'SRGGB10_CSI2P' : 640x480 1640x1232 1920x1080 3280x2464
           'SRGGB8' : 640x480 1640x1232 1920x1080 3280x2464
"""

CAM_SAMPLE = """\
[0:00:01.000000000] [500]  INFO Camera camera_manager.cpp:284 libcamera v0.3.0
Available cameras:
1: 'imx708' (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)
2: Internal front camera (/base/soc/i2c0mux/i2c@1/ov5647@36)
"""


def test_rpicam_list_gives_sensors_ids_and_modes_without_crops() -> None:
    """Each sensor with its id and modes; the crop areas are not taken for modes."""
    cams = parse_rpicam_list(RPICAM_SAMPLE)
    assert [(c.index, c.name, c.size) for c in cams] == [
        (0, "imx219", "3280x2464"),
        (1, "imx477", "4056x3040"),
    ]
    assert cams[0].camera_id == "/base/soc/i2c0mux/i2c@1/imx219@10"
    assert cams[0].modes == [
        "640x480@206.65",
        "1640x1232@41.85",
        "1920x1080@47.57",
        "3280x2464@21.19",
    ]
    assert cams[1].modes == ["1332x990@120.05", "2028x1080@50.03"]


def test_rpicam_list_older_format_has_modes_without_rates() -> None:
    """The format without per-mode rates still gives the sizes."""
    (cam,) = parse_rpicam_list(RPICAM_OLD_SAMPLE)
    assert cam.modes == ["640x480", "1640x1232", "1920x1080", "3280x2464"]


def test_cam_list_gives_names_and_ids() -> None:
    """cam -l: quoted model names lose their quotes; descriptions stay as they are."""
    cams = parse_cam_list(CAM_SAMPLE)
    assert [(c.index, c.name, c.camera_id) for c in cams] == [
        (1, "imx708", "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"),
        (2, "Internal front camera", "/base/soc/i2c0mux/i2c@1/ov5647@36"),
    ]


def test_listing_suggests_an_exec_entry_and_numbers_cameras_for_rpicam_vid() -> None:
    """The first tool installed answers; its cameras become rpicam-vid commands (0-based)."""
    calls = []

    def run(argv: list[str]) -> str | None:
        calls.append(argv[0])
        return CAM_SAMPLE if argv[0] == "cam" else None

    tool, cams = list_libcameras(run)
    assert calls == ["rpicam-hello", "libcamera-hello", "cam"]
    text = format_libcamera_list(tool, cams)
    assert "source: exec" in text
    assert "rpicam-vid -t 0 -n --camera 0 --codec mjpeg" in text
    assert "--camera 1 " in text
    assert format_libcamera_list("", []).startswith("libcamera: no rpicam-hello")
