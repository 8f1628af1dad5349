#!/bin/sh
# /usr/bin/depin-gateway: the CLI in the package's own venv (built by postinst).
exec /opt/depin-gateway/.venv/bin/depin-gateway "$@"
