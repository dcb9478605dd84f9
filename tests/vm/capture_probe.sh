#!/bin/sh
# tests/vm/run --exec tests/vm/capture_probe.sh: the probe with the guest's venv python.
exec python "$(dirname "$0")/capture_probe.py"
