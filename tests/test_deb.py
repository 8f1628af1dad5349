"""The Debian package: built with dpkg-deb, lintian-clean, and installed, reinstalled, upgraded,
removed and purged with apt-get on this machine (inside overlays in a private mount namespace,
tests/deb/lifecycle.sh, so nothing real is touched). The arm64 build is checked, not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _build(out: Path, arch: str) -> Path:
    env = os.environ | {"DEB_ARCH": arch, "DEB_OUT": str(out), "PYTHON": sys.executable}
    result = subprocess.run(["bash", "debian/build-deb.sh"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    deb = Path(result.stdout.strip().splitlines()[-1])
    deb = deb if deb.is_absolute() else ROOT / deb
    assert deb.name == f"depin-gateway_0.1.0_{arch}.deb" and deb.is_file()
    return deb


def _field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def _contents(deb: Path) -> list[str]:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    return [line.split()[-1].removeprefix(".") for line in listing.splitlines()]


def _upgrade_of(deb: Path, work: Path) -> Path:
    """The same package as version 0.1.1, to drive dpkg's upgrade path."""
    tree = work / "upgrade-tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(control.read_text().replace("Version: 0.1.0", "Version: 0.1.1"))
    out = work / "depin-gateway_0.1.1_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree), str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return out


def _state(out: Path, name: str) -> dict[str, str]:
    lines = (out / f"{name}.state").read_text().splitlines()
    facts: dict[str, str] = {}
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "stat":
            owner, group, mode, path = rest.split()
            facts[path] = f"{owner}:{group} {mode}"
        elif kind == "missing":
            facts[rest] = "missing"
        elif kind == "hash":
            digest, path = rest.split()
            facts["hash " + path] = digest
        elif kind == "entry":
            facts.setdefault("entries", "")
            facts["entries"] += rest + " "
        else:
            facts[kind] = rest
    return facts


@pytest.fixture(scope="module")
def amd64_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (
        shutil.which("dpkg") is None
        or subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
        != "amd64"
    ):
        raise AssertionError("this test installs the amd64 package: run it on amd64 Debian")
    return _build(tmp_path_factory.mktemp("deb"), "amd64")


def test_package_is_lintian_clean_and_carries_what_it_should(amd64_deb: Path) -> None:
    result = subprocess.run(["lintian", "--fail-on", "error,warning", str(amd64_deb)],
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    files = _contents(amd64_deb)
    for path in ("/usr/bin/depin-gateway", "/lib/systemd/system/depin-gateway.service",
                 "/etc/mosquitto/conf.d/depin-gateway.conf",
                 "/usr/share/doc/depin-gateway/copyright"):  # fmt: skip
        assert path in files, path
    wheels = [f for f in files if f.startswith("/opt/depin-gateway/wheels/")]
    assert any("depin_gateway-0.1.0" in w for w in wheels)
    assert not any("aarch64" in w for w in wheels)
    assert _field(amd64_deb, "Architecture") == "amd64"


def test_install_reinstall_upgrade_remove_purge(amd64_deb: Path, tmp_path: Path) -> None:
    """User in dialout, config and 0600 keys from the first init, a unit systemd-analyze
    accepts; reinstall and upgrade keep config and keys (same hashes); remove keeps data;
    purge keeps the keys unless DEPIN_GATEWAY_PURGE_KEYS=yes, and says so."""
    for real in ("/etc/depin-gateway", "/var/lib/depin-gateway", "/opt/depin-gateway"):
        assert not Path(real).exists(), f"{real} exists: a real install is on this machine"
    out, layers = tmp_path / "out", tmp_path / "layers"
    out.mkdir()
    upgrade = _upgrade_of(amd64_deb, tmp_path)
    result = subprocess.run(
        ["unshare", "-m", "bash", str(ROOT / "tests/deb/lifecycle.sh"), str(amd64_deb),
         str(upgrade), str(out), str(layers)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    logs = {p.name: p.read_text()[-3000:] for p in out.glob("*.log")}
    assert result.returncode == 0 and (out / "done").exists(), (result.stderr[-3000:], logs)
    for real in ("/etc/depin-gateway", "/var/lib/depin-gateway", "/opt/depin-gateway"):
        assert not Path(real).exists(), f"{real} leaked out of the test's namespace"

    first = _state(out, "installed")
    assert "dialout" in first["user"] and "depin-gateway" in first["user"]
    assert first["/etc/depin-gateway"] == "root:depin-gateway 750"
    assert first["/etc/depin-gateway/gateway.toml"] == "root:depin-gateway 640"
    assert first["/var/lib/depin-gateway"] == "depin-gateway:depin-gateway 700"
    for key in ("identity.key", "owner.key"):
        assert first[f"/var/lib/depin-gateway/{key}"] == "depin-gateway:depin-gateway 600"
    assert first["/usr/bin/depin-gateway"] == "root:root 755"
    assert (out / "version.txt").read_text().strip() == "depin-gateway 0.1.0"
    assert (out / "verify.rc").read_text().strip() == "0", (out / "verify.log").read_text()
    assert "systemd is not running here" in (out / "install.log").read_text()

    keys = {k: v for k, v in first.items() if k.startswith("hash ")}
    assert len(keys) == 2
    for name in ("reinstalled", "upgraded", "removed"):
        assert {k: v for k, v in _state(out, name).items() if k.startswith("hash ")} == keys
    assert (out / "config-tail.txt").read_text().strip() == "# operator's edit"
    assert (out / "upgraded-version.txt").read_text() == "0.1.1"
    removed = _state(out, "removed")
    assert removed["/opt/depin-gateway/.venv/bin/depin-gateway"] == "missing"
    assert removed["/etc/depin-gateway/gateway.toml"] != "missing"

    purged = _state(out, "purged")
    assert purged["/etc/depin-gateway"] == "missing"
    assert sorted(purged["entries"].split()) == ["identity.key", "owner.key"]
    assert "the keys (*.key, *.pub) are KEPT" in (out / "purge.log").read_text()
    again = _state(out, "installed-again")
    assert {k: v for k, v in again.items() if k.startswith("hash ")} == keys  # not new keys
    assert _state(out, "purged-keys")["/var/lib/depin-gateway"] == "missing"
    assert "DEPIN_GATEWAY_PURGE_KEYS=yes" in (out / "purge-keys.log").read_text()


def test_arm64_build_carries_aarch64_wheels(tmp_path: Path) -> None:
    """Built on amd64, not installed: every compiled wheel is aarch64; zfec (no aarch64 wheel
    on PyPI) comes as source, with the compiler it then needs in Depends."""
    deb = _build(tmp_path, "arm64")
    assert _field(deb, "Architecture") == "arm64"
    wheels = [f.rsplit("/", 1)[1] for f in _contents(deb) if "/opt/depin-gateway/wheels/" in f]
    compiled = [w for w in wheels if w.endswith(".whl") and "-none-any" not in w]
    assert compiled and all("aarch64" in w for w in compiled), compiled
    assert not any("x86_64" in w for w in wheels)
    assert any(w.startswith("depin_gateway-0.1.0-py3-none-any") for w in wheels)
    assert any(w.startswith("zfec-") and w.endswith(".tar.gz") for w in wheels)
    assert "gcc" in _field(deb, "Depends") and "python3-dev" in _field(deb, "Depends")
