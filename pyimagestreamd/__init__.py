"""pyimagestreamd: a camera streamer with a WebSocket pull protocol.

Data flow: a capture thread per camera (camera.py, v4l2.py, testpattern.py) produces JPEG
frames (encoder.py) and hands them to that camera's hub (hub.py), a latest-frame slot; the
server (server.py) answers each client's pull with the newest frame it has not seen.
daemon.py ties them together under systemd (systemd.py); cli.py is the entry point.
"""

__version__ = "0.1.0"
