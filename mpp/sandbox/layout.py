"""Where a sandbox keeps everything, so that every room names the same paths.

One directory D holds the whole sandbox (see the package docstring for the tree); nodes
are ``dbN`` under it and are reached over TCP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HOST = "127.0.0.1"
STATE_FILE = "sandbox.json"
PASSWORD_FILE = "mpp.password"
REPL_PASSWORD_FILE = "repl.password"
CONFIG_FILE = "mpp.toml"
LOCK_FILE = ".lock"
TEMPLATE_DIR = ".template"

# Unix socket paths are limited to 108 bytes including the NUL; mariadbd refuses to start
# with a longer one, which a deep tmp_path easily produces.
_MAX_SOCKET_PATH = 100


def node_dir(d: Path, name: str) -> Path:
    """The node's own directory: config, logs and datadir, so one rmtree removes a node."""
    return d / name


def datadir(d: Path, name: str) -> Path:
    """The node's datadir; also on mariadbd's command line, which is how we recognise it."""
    return d / name / "data"


def cnf_path(d: Path, name: str) -> Path:
    """The node's my.cnf, usable as ``mariadb --defaults-file=...`` too."""
    return d / name / "my.cnf"


def error_log(d: Path, name: str) -> Path:
    """Where mariadbd's errors go, quoted when a start fails."""
    return d / name / "error.log"


def pid_file(d: Path, name: str) -> Path:
    """mariadbd's own PID file: the fallback when sandbox.json lost the PID."""
    return d / name / "mariadbd.pid"


def socket_path(d: Path, name: str) -> Path:
    """The node's Unix socket, moved to /tmp when the path would be too long for AF_UNIX."""
    path = d / name / "mariadbd.sock"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    # Too long for AF_UNIX; nothing of ours uses the socket (we talk TCP), but mariadbd
    # insists on creating one, so park it somewhere short and unique to this datadir.
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    return Path("/tmp") / f"mpp-sandbox-{digest}-{name}.sock"


def is_initialised(d: Path, name: str) -> bool:
    """A datadir and a config: the config is written last, so both mean a finished copy."""
    return (datadir(d, name) / "mysql").is_dir() and cnf_path(d, name).exists()
