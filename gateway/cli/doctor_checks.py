"""``depin-gateway doctor``: the things operators get wrong, each failure with its fix in one line.

Every check returns a ``Check`` (PASS, FAIL or SKIP); ``run_doctor`` (in ``doctor_net``) prints
one line per check and returns 0 only when nothing failed. Local checks live here; the ones
that talk to a broker, a storage node or a chain are in ``gateway.cli.doctor_net``. A check
never raises: whatever goes wrong inside it is that check's FAIL, so one broken thing never
hides the others.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.clock import kernel_clock_synced
from gateway.config import Config
from gateway.errors import GatewayError, one_line

__all__ = ["CHECK_NAMES", "FAIL", "PASS", "SKIP", "Check", "ServiceUser", "service_user"]

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
CHECK_NAMES = ("broker", "broker-queue", "disk", "clock", "serial", "keys", "storage", "chain",
               "wallet")  # fmt: skip
SERVICE_USER = "depin-gateway"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status}  {self.name:<13} {self.detail}"
        return one_line(text + (f"  -> fix: {self.fix}" if self.fix else ""), 600)


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """Whom the service runs as: the package's user if it exists, else whoever runs doctor."""

    name: str
    uid: int
    gids: frozenset[int]


def service_user(name: str | None = None) -> ServiceUser:
    try:
        entry = pwd.getpwnam(name or SERVICE_USER)
    except KeyError:
        if name is not None:
            raise GatewayError(f"--user {name}: no such user") from None
        entry = pwd.getpwuid(os.getuid())
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
    return ServiceUser(entry.pw_name, entry.pw_uid, frozenset(groups))


def _can(user: ServiceUser, st: os.stat_result, read: int, write: int) -> bool:
    """Would ``user`` get read and write access by the mode bits (root always does)?"""
    if user.uid == 0:
        return True
    if st.st_uid == user.uid:
        return bool(st.st_mode & (read << 6)) and bool(st.st_mode & (write << 6))
    if st.st_gid in user.gids:
        return bool(st.st_mode & (read << 3)) and bool(st.st_mode & (write << 3))
    return bool(st.st_mode & read) and bool(st.st_mode & write)


def check_serial(config: Config, user: ServiceUser) -> list[Check]:
    if not config.serial:
        return [Check("serial", SKIP, "no [[serial]] port configured")]
    checks = []
    for port in config.serial:
        path = Path(port.port)
        try:
            st = path.stat()
        except OSError as exc:
            checks.append(Check("serial", FAIL, f"{port.name}: {port.port} {exc.strerror}",
                                f"plug the sensor in, or fix [[serial]] port for {port.name} "
                                "(ls /dev/serial/by-id/ for stable names)"))  # fmt: skip
            continue
        if not stat.S_ISCHR(st.st_mode):
            checks.append(Check("serial", FAIL, f"{port.name}: {port.port} is not a device",
                                "point [[serial]] port at a /dev/tty* device"))  # fmt: skip
        elif not _can(user, st, 4, 2):
            group = _group_name(st.st_gid)
            checks.append(
                Check(
                    "serial",
                    FAIL,
                    f"{port.name}: {user.name} cannot read/write {port.port}",
                    f"usermod -aG {group} {user.name}, then restart the service",
                )
            )
        else:
            detail = f"{port.name}: {port.port} readable by {user.name}"
            checks.append(Check("serial", PASS, detail))
    return checks


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _key_files(state_dir: Path) -> list[Path]:
    try:
        return sorted(p for p in state_dir.iterdir() if p.suffix == ".key" and p.is_file())
    except OSError:
        return []


def check_keys(config: Config, user: ServiceUser) -> list[Check]:
    keys = _key_files(config.state_dir)
    if not keys:
        return [Check("keys", FAIL, f"no key files in {config.state_dir}",
                      f"depin-gateway init --config {config.path}")]  # fmt: skip
    checks = []
    for key in keys:
        st = key.stat()
        if st.st_mode & 0o077:
            checks.append(Check("keys", FAIL,
                                f"{key} is mode {stat.S_IMODE(st.st_mode):04o}: others can read it",
                                f"chmod 600 {key}"))  # fmt: skip
        elif user.uid not in (0, st.st_uid):
            checks.append(Check("keys", FAIL, f"{key} is not owned by {user.name}",
                                f"chown {user.name}: {key}"))  # fmt: skip
        else:
            checks.append(Check("keys", PASS, f"{key} mode 0600, owner {user.name}"))
    return checks


def _tree_size(directory: Path, limit: int = 200_000) -> int:
    """Bytes under ``directory`` (what the budget already holds); bounded in files visited."""
    total, seen = 0, 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            seen += 1
            if seen > limit:
                return total
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def check_disk(config: Config) -> Check:
    budget = config.gateway.disk_budget
    where = config.state_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    held = _tree_size(config.state_dir) if config.state_dir.exists() else 0
    if free + held < budget:
        room = (free + held) * 9 // 10
        return Check("disk", FAIL,
                     f"disk_budget {budget >> 20} MiB but only {(free + held) >> 20} MiB "
                     f"available on {where}",
                     f"set gateway.disk_budget = \"{room >> 20}MiB\" in {config.path} or free "
                     "space")  # fmt: skip
    return Check("disk", PASS, f"disk_budget {budget >> 20} MiB, {free >> 20} MiB free on {where}")


def check_clock(synced: Callable[[], bool] = kernel_clock_synced) -> Check:
    if synced():
        return Check("clock", PASS, "the kernel clock is synchronised (NTP)")
    return Check(
        "clock",
        FAIL,
        "the clock is not synchronised: readings carry wrong times",
        "timedatectl set-ntp true (systemd-timesyncd or chrony), check network/NTP",
    )
