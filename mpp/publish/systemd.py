"""Telling systemd how the process is doing (`Type=notify`, `WatchdogSec=`), through the
sdnotify library (the datagram protocol of sd_notify(3); not written by hand).

READY=1 once the process does its job (`mpp run`: its first cycle published; `mpp agent`:
mysqld held), a STATUS= line a person reads in `systemctl status`, WATCHDOG=1 from the
loop that must stay alive (a hung poll loop stops the pings and systemd restarts mpp),
STOPPING=1 on the way out. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import os
import threading
import time

import sdnotify


class Systemd:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        usec = os.environ.get("WATCHDOG_USEC", "")
        watchdog = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None
        # sd_watchdog_enabled(3): ping at half the timeout
        self.ping_every = watchdog / 2 if watchdog is not None else None
        self._last_ping = 0.0
        self._ready = False
        self._lock = threading.Lock()

    def _send(self, text: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(text)

    def ready(self, status: str) -> None:
        """Once: the process does its job now."""
        with self._lock:
            if self._ready:
                return
            self._ready = True
        self._send(f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={_one_line(status)}")

    def alive(self) -> None:
        """From the loop that must keep running; rate-limited to the watchdog's pace."""
        if self.ping_every is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last_ping < self.ping_every:
                return
            self._last_ping = now
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
