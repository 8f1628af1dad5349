# depin-gateway: `make demo` and `make test` do all set-up on a fresh Debian / Raspberry Pi OS machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
APT_PACKAGES := mosquitto mosquitto-clients gcc make libssl-dev openssl python3-venv python3-dev

.PHONY: all demo test check bench sysdeps venv install-broker-config install-systemd clean deb deb-tools install uninstall test-tools

all: test

# System packages: Mosquitto (real broker in tests and demo), gcc (firmware C tests, native commP),
# libssl-dev (OpenSSL SHA-256 for the native commP helper).
sysdeps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto mosquitto-clients"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc make"; \
	[ -f /usr/include/openssl/sha.h ] || missing="$$missing libssl-dev"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $$missing >/dev/null || { echo "apt-get install$$missing failed" >&2; exit 1; }; \
	  else \
	    echo "missing system packages:$$missing" >&2; \
	    echo "run as root: sudo apt-get install -y$$missing   (then re-run make)" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml setup.py
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: sysdeps $(STAMP)

# Node.js test tools pinned in package-lock.json: anvil (a real EVM node; its binary comes in the
# platform optionalDependency), solc (wasm) and the real FOC client @filoz/synapse-core. Everything
# comes from the npm registry; nothing is fetched from GitHub.
$(NODE_STAMP): package.json package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages: nodejs npm"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null || { echo "apt-get install nodejs npm failed" >&2; exit 1; }; \
	  else \
	    echo "missing system packages: nodejs npm" >&2; \
	    echo "run as root: sudo apt-get install -y nodejs npm   (then re-run make)" >&2; exit 1; \
	  fi; \
	fi
	npm ci --no-audit --no-fund
	@touch $(NODE_STAMP)

demo: venv $(NODE_STAMP)
	$(BIN)/depin-gateway demo $(DEMO_ARGS)

check: venv
	$(BIN)/ruff check gateway drivers tests bench
	$(BIN)/ruff format --check gateway drivers tests bench
	$(BIN)/mypy

test: venv check test-tools $(NODE_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

install-broker-config: sysdeps
	install -m 0644 systemd/mosquitto-depin.conf /etc/mosquitto/conf.d/depin-gateway.conf
	@echo "installed /etc/mosquitto/conf.d/depin-gateway.conf; restart mosquitto to apply"

install-systemd:
	install -m 0644 systemd/depin-gateway.service /etc/systemd/system/depin-gateway.service
	install -m 0644 systemd/depin-node.service /etc/systemd/system/depin-node.service
	@echo "installed units; run: systemctl daemon-reload && systemctl enable --now depin-gateway"

# Debian package (DESIGN section 13): DEB_ARCH=amd64 (default: this machine) or arm64.
# lintian is installed when missing; the build fails on any lintian error or warning that
# debian/lintian-overrides does not explain.
DEB_ARCH ?= $(shell dpkg --print-architecture)
DEB_VERSION = $(shell $(BIN)/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
DEB_FILE = build/depin-gateway_$(DEB_VERSION)_$(DEB_ARCH).deb

deb-tools:
	@command -v dpkg-deb >/dev/null && command -v lintian >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq dpkg-dev lintian >/dev/null; }

deb: venv deb-tools
	DEB_ARCH=$(DEB_ARCH) PYTHON=$(BIN)/python bash debian/build-deb.sh
	lintian --fail-on error,warning $(DEB_FILE)

# `make install` from a checkout: the same package, installed with apt (so upgrades and purges
# work the same way as for a downloaded .deb). `make uninstall` removes it, keeping data.
install: deb
	DEBIAN_FRONTEND=noninteractive apt-get install -y ./$(DEB_FILE)

uninstall:
	apt-get remove -y depin-gateway

# Tools the slower tests drive: a real browser (fleet page), systemd-analyze (units), lintian.
test-tools:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v lintian >/dev/null || missing="$$missing lintian"; \
	command -v dpkg-deb >/dev/null || missing="$$missing dpkg-dev"; \
	if [ -n "$$missing" ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $$missing >/dev/null || { echo "apt-get install$$missing failed" >&2; exit 1; }; \
	fi

clean:
	rm -rf $(VENV) node_modules build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis firmware-bridge/c/build
