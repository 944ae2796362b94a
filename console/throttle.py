"""Bounds on password sign-ins, which anyone who reaches the console can attempt.

- `Throttle`: attempts per key (a user name, a client address) in fixed windows; over a key's limit, 429
  until its window ends. An attempt counts from its admission, so a burst of parallel guesses cannot all
  pass before the first of them fails; a successful sign-in gives its attempt back.
- `Gate`: how many argon2 checks run at once. Each holds 64 MiB while it runs: unbounded, 16 parallel
  guesses took the console from 105 MiB to 1.1 GiB resident. A few more wait briefly; the rest get 503.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def address_key(host: str | None) -> str:
    """The key of a client address: IPv4 as is, IPv6 by its /64 (one host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


@dataclass
class _Window:
    start: float
    attempts: int = 0
    logged: bool = False


@dataclass(frozen=True)
class Refusal:
    retry_after: int
    """Seconds until the fullest key's window ends."""
    first: list[str] = field(default_factory=list)
    """The keys refused for the first time in their window: log these, once."""


class Throttle:
    """Attempts per key in fixed windows, in this process's memory (each replica counts its own). At most
    `max_keys` keys are kept: past that the oldest window is forgotten first, so a flood of new names
    cannot grow the table."""

    def __init__(self, window_seconds: int, max_keys: int = 10_000):
        self._window, self._max = window_seconds, max_keys
        self._keys: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, key: str, now: float) -> _Window:
        entry = self._keys.get(key)
        if entry is None or now - entry.start >= self._window:
            entry = self._keys[key] = _Window(now)
            self._keys.move_to_end(key)
            while len(self._keys) > self._max:
                self._keys.popitem(last=False)
        return entry

    def admit(self, limits: dict[str, int]) -> Refusal | None:
        """Counts an attempt against each key (key -> its limit); or, while any key is at its limit, counts
        nothing and says how long to wait."""
        with self._lock:
            now = time.monotonic()
            entries = {key: self._entry(key, now) for key in limits}
            full = [key for key, entry in entries.items() if entry.attempts >= limits[key]]
            if full:
                first = [key for key in full if not entries[key].logged]
                for key in full:
                    entries[key].logged = True
                wait = max(entries[key].start + self._window - now for key in full)
                return Refusal(max(1, math.ceil(wait)), first)
            for entry in entries.values():
                entry.attempts += 1
            return None

    def give_back(self, keys: list[str]) -> None:
        """An admitted attempt that does not count: it succeeded, or was never checked."""
        with self._lock:
            for key in keys:
                entry = self._keys.get(key)
                if entry is not None and entry.attempts > 0:
                    entry.attempts -= 1


class Busy(Exception):
    """Every password check is taken and the queue for them is full or too slow."""


class Gate:
    """At most `running` checks at once; up to `queued` more wait up to `wait_seconds` for one, holding a
    server thread each; any beyond are turned away at once, so the threads stay free for other requests."""

    def __init__(self, running: int, queued: int, wait_seconds: float):
        self._running = threading.BoundedSemaphore(running)
        self._admitted = threading.BoundedSemaphore(running + queued)
        self._wait = wait_seconds

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._admitted.acquire(blocking=False):
            raise Busy
        try:
            if not self._running.acquire(timeout=self._wait):
                raise Busy
            try:
                yield
            finally:
                self._running.release()
        finally:
            self._admitted.release()
