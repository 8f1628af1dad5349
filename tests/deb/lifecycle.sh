#!/usr/bin/env bash
# The .deb's whole life on this machine, inside a private mount namespace (tests/test_deb.py
# runs it under `unshare -m`): overlays on /etc /usr /opt /var take every write, so the real
# system never sees the package, its users or dpkg's bookkeeping. Results go to $OUT.
set -euo pipefail
DEB=$1 UPGRADE=$2 OUT=$3 LAYERS=$4
mount --make-rprivate /
for dir in etc usr opt var; do
    mkdir -p "$LAYERS/$dir/upper" "$LAYERS/$dir/work"
    mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$LAYERS/$dir/upper,workdir=$LAYERS/$dir/work" "/$dir"
done
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=120)
state() {  # one snapshot: owners, modes and hashes of what the package made
    local name=$1
    {
        echo "user $(id depin-gateway 2>&1 || true)"
        for path in /etc/depin-gateway /etc/depin-gateway/gateway.toml /var/lib/depin-gateway \
                /var/lib/depin-gateway/identity.key /var/lib/depin-gateway/owner.key \
                /opt/depin-gateway/.venv/bin/depin-gateway /usr/bin/depin-gateway \
                /lib/systemd/system/depin-gateway.service /etc/mosquitto/conf.d/depin-gateway.conf; do
            if [ -e "$path" ]; then echo "stat $(stat -c '%U %G %a' "$path") $path"; else echo "missing $path"; fi
        done
        for key in /var/lib/depin-gateway/*.key; do
            [ -f "$key" ] && echo "hash $(sha256sum "$key")"
        done
        ls -A /var/lib/depin-gateway 2>/dev/null | sed 's/^/entry /' || true
    } > "$OUT/$name.state"
}

"${APT[@]}" install "$DEB" > "$OUT/install.log" 2>&1
state installed
/usr/bin/depin-gateway --version > "$OUT/version.txt" 2>&1
systemd-analyze verify /lib/systemd/system/depin-gateway.service > "$OUT/verify.log" 2>&1 \
    && echo 0 > "$OUT/verify.rc" || echo $? > "$OUT/verify.rc"
echo "# operator's edit" >> /etc/depin-gateway/gateway.toml

"${APT[@]}" install --reinstall "$DEB" > "$OUT/reinstall.log" 2>&1
state reinstalled
"${APT[@]}" install "$UPGRADE" > "$OUT/upgrade.log" 2>&1
state upgraded
tail -n 1 /etc/depin-gateway/gateway.toml > "$OUT/config-tail.txt"
dpkg-query -W -f '${Version}' depin-gateway > "$OUT/upgraded-version.txt"

"${APT[@]}" remove depin-gateway > "$OUT/remove.log" 2>&1
state removed
"${APT[@]}" purge depin-gateway > "$OUT/purge.log" 2>&1
state purged

# a purge kept the keys: a new install takes them up again instead of making new ones
"${APT[@]}" install "$DEB" > "$OUT/install-again.log" 2>&1
state installed-again
DEPIN_GATEWAY_PURGE_KEYS=yes "${APT[@]}" purge depin-gateway > "$OUT/purge-keys.log" 2>&1
state purged-keys
echo done > "$OUT/done"
