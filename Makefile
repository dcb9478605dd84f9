# The single entry point: CI calls only these targets.
#   make run          install what is needed, run the daemon with etc/pyimagestream.yaml
#                     (another file: make run CONFIG=path/to/file.yaml)
#   make test         unit, network and browser tests (real sockets, real Chromium)
#   make lint         ruff + mypy --strict
#   make bench        throughput benchmark against a bare websockets server
#   make bench-stream CPU per delivered frame on loopback (AGAINST=DIR: this tree against
#                     another, e.g. a git archive of main)
#   make deb          build the Debian package into build/
#   make system-test  installed .deb under a real systemd (nspawn)
#   make vm-test      real V4L2 drivers (vivid, v4l2loopback) in a QEMU guest
#   make bench-vm     CPU per frame against µStreamer, in the QEMU guest
#   make bench-link   frame age on a shaped slow link against µStreamer, in the QEMU guest
#                     (~35 min; BENCH_SECONDS=N per case to try it shorter)
#   make vm-test-arm64  the arm64 .deb installed and streaming in an arm64 guest (TCG);
#                     also `make vm-test ARCH=arm64`, `make bench-vm ARCH=arm64`
#   make vm-test-libcamera  libcamera (vimc) in a trixie guest: cam, libcamerasrc as
#                     `source: exec`, and the installed service running it
#   make deps         apt-get install the Debian packages the above need (root or sudo)

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
CONFIG ?= etc/pyimagestream.yaml
# pip must not pick up a machine's own index configuration: the pins carry hashes.
export PIP_CONFIG_FILE := /dev/null
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test unit-test browser-test lint bench bench-stream deb system-test vm-test bench-vm bench-link \
	vm-test-arm64 vm-test-libcamera deps clean

# Two steps in one venv: the runtime pins (all `make run` needs), then the development tools
# (pytest, ruff, mypy) on top for the targets that need them.
$(VENV)/.stamp-run: requirements.txt
	tools/install-deps --check-venv || tools/install-deps base
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --require-hashes --no-deps -r requirements.txt
	# `pyimagestreamd` as a command of the venv, running this tree's code from any folder.
	$(VPY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))' \
		| xargs -I{} sh -c 'echo "$(CURDIR)" > "{}/pyimagestream-source-tree.pth"'
	printf '#!/bin/sh\nexec "$$(dirname "$$0")/python" -m pyimagestreamd "$$@"\n' \
		> $(VENV)/bin/pyimagestreamd
	chmod +x $(VENV)/bin/pyimagestreamd
	touch $@

$(VENV)/.stamp: $(VENV)/.stamp-run requirements-dev.txt
	$(VPY) -m pip install --quiet --require-hashes --no-deps -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp

run: $(VENV)/.stamp-run
	$(VENV)/bin/pyimagestreamd --config $(CONFIG)

test: unit-test browser-test

unit-test: $(VENV)/.stamp
	$(VPY) -m pytest -q tests --ignore=tests/browser --ignore=tests/system --ignore=tests/vm

browser-test: $(VENV)/.stamp
	tests/browser/run

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff format --check pyimagestreamd tests bench tools/pin-requirements tools/make-icons
	$(VENV)/bin/ruff check pyimagestreamd tests bench tools/pin-requirements tools/make-icons
	$(VENV)/bin/mypy pyimagestreamd

bench: $(VENV)/.stamp
	$(VPY) -m bench.throughput

bench-stream: $(VENV)/.stamp
	$(VPY) -m bench.stream $(if $(AGAINST),--against $(AGAINST)) $(if $(TICKER),--ticker)

deb:
	tools/build-deb

system-test: deb
	tests/system/run

# ARCH=arm64: the arm64 guest instead of the amd64 one.
VM_ARCH := $(if $(ARCH),--arch $(ARCH))

vm-test:
	tests/vm/run $(VM_ARCH)

vm-test-arm64:
	tests/vm/run --arch arm64

vm-test-libcamera:
	tests/vm/run --suite trixie

bench-vm:
	tests/vm/run $(VM_ARCH) --bench

bench-link:
	tests/vm/run --bench-link

deps:
	tools/install-deps all

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache test-artifacts
