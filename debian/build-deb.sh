#!/usr/bin/env bash
# Build depin-gateway_<version>_<arch>.deb with dpkg-deb: `make deb [DEB_ARCH=amd64|arm64]`.
#
# The package carries wheels, not a venv: postinst builds /opt/depin-gateway/.venv on the target
# from them with `pip install --no-index` (a venv is not relocatable; a Pi may be offline).
# Wheels for another architecture come from `pip download --platform ... --only-binary=:all:`;
# a dependency with no wheel for that architecture (zfec on aarch64) is carried as source and
# compiled by postinst, and the package then depends on gcc and python3-dev.
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH=${DEB_ARCH:-$(dpkg --print-architecture)}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${DEB_OUT:-build}
case "$ARCH" in
    amd64) MACHINE=x86_64 ;;
    arm64) MACHINE=aarch64 ;;
    *) echo "build-deb: unsupported architecture $ARCH (amd64 or arm64)" >&2; exit 2 ;;
esac
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
mapfile -t DEPS < <("$PYTHON" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")')

WORK="$OUT/deb-$ARCH"
ROOT="$WORK/root"
WHEELS="$ROOT/opt/depin-gateway/wheels"
rm -rf "$WORK"
mkdir -p "$WHEELS" "$ROOT/DEBIAN"

# Debian bookworm (Raspberry Pi OS 12) has glibc 2.36 and CPython 3.11.
PLATFORMS=(--platform "manylinux2014_$MACHINE")
for glibc in 2_17 2_24 2_27 2_28 2_31 2_34 2_35 2_36; do
    PLATFORMS+=(--platform "manylinux_${glibc}_$MACHINE")
done
PIP=("$PYTHON" -m pip --disable-pip-version-check -q)
EXTRA_DEPENDS=""

# Our own code: with the native commP helper only when it is built for this very machine (a
# stale build/lib from the other architecture must not end up in the wheel).
rm -rf build/lib* build/bdist* 2>/dev/null || true
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
    "${PIP[@]}" wheel --no-deps -w "$WHEELS" .
else
    DEPIN_GATEWAY_PURE=1 "${PIP[@]}" wheel --no-deps -w "$WHEELS" .
fi
rm -rf build/lib* build/bdist* ./*.egg-info/SOURCES.txt 2>/dev/null || true

for dep in "${DEPS[@]}"; do
    if ! "${PIP[@]}" download --only-binary=:all: "${PLATFORMS[@]}" --python-version 3.11 \
            --implementation cp -d "$WHEELS" "$dep" 2>"$WORK/pip.err"; then
        name=${dep%%[<>=\[ ]*}
        if ! grep -q "No matching distribution found for $name" "$WORK/pip.err"; then
            cat "$WORK/pip.err" >&2; exit 1
        fi
        echo "build-deb: no $MACHINE wheel for $name: carrying its source (postinst compiles it)"
        "${PIP[@]}" download --no-deps --no-binary=:all: -d "$WHEELS" "$dep"
        # what pip needs to build an sdist offline (build isolation)
        "${PIP[@]}" download --only-binary=:all: -d "$WHEELS" "setuptools>=77" wheel
        EXTRA_DEPENDS=", gcc, python3-dev"
    fi
done

install -D -m 0755 debian/depin-gateway.sh "$ROOT/usr/bin/depin-gateway"
install -D -m 0644 systemd/depin-gateway.service "$ROOT/lib/systemd/system/depin-gateway.service"
install -D -m 0644 systemd/depin-node.service "$ROOT/lib/systemd/system/depin-node.service"
install -D -m 0644 systemd/mosquitto-depin.conf "$ROOT/etc/mosquitto/conf.d/depin-gateway.conf"
DOC="$ROOT/usr/share/doc/depin-gateway"
install -D -m 0644 debian/copyright "$DOC/copyright"
install -D -m 0644 README.md "$ROOT/opt/depin-gateway/README.md"
gzip -9n -c debian/changelog > "$DOC/changelog.gz"
install -d "$ROOT/usr/share/man/man1"
gzip -9n -c debian/depin-gateway.1 > "$ROOT/usr/share/man/man1/depin-gateway.1.gz"
chmod 0644 "$DOC/changelog.gz" "$ROOT/usr/share/man/man1/depin-gateway.1.gz"
install -D -m 0644 debian/lintian-overrides "$ROOT/usr/share/lintian/overrides/depin-gateway"
for script in postinst prerm postrm; do
    install -m 0755 "debian/$script" "$ROOT/DEBIAN/$script"
done
install -m 0644 debian/conffiles "$ROOT/DEBIAN/conffiles"
find "$ROOT" -type d -exec chmod 0755 {} +
find "$WHEELS" -type f -exec chmod 0644 {} +

SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    -e "s/@EXTRA_DEPENDS@/$EXTRA_DEPENDS/" debian/control.in > "$ROOT/DEBIAN/control"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/md5sums"

DEB="$OUT/depin-gateway_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
