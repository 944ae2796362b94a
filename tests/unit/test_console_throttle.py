"""The console's sign-in bounds (console/throttle.py), without services."""

import threading
import time

import pytest

from console import throttle as throttle_module
from console.throttle import Busy, Gate, Throttle, address_key


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(throttle_module.time, "monotonic", lambda: now[0])
    return now


def test_a_key_is_refused_over_its_limit_until_its_window_ends(clock):
    throttle = Throttle(window_seconds=60)
    limits = {"user rob": 3, "address 192.0.2.1": 100}
    assert [throttle.admit(limits) for _ in range(3)] == [None, None, None]
    clock[0] += 10
    refused = throttle.admit(limits)
    assert refused.retry_after == 50 and refused.first == ["user rob"]
    again = throttle.admit(limits)
    assert again.retry_after == 50 and again.first == []  # logged once per window, not per attempt
    # A refused attempt counts against no key: the address still has its allowance for other names.
    assert throttle.admit({"user ann": 3, "address 192.0.2.1": 100}) is None
    clock[0] += 50
    assert throttle.admit(limits) is None  # a new window
    throttle.give_back(list(limits))  # e.g. it succeeded
    assert [throttle.admit(limits) for _ in range(3)] == [None, None, None]
    assert throttle.admit(limits).first == ["user rob"]


def test_the_table_of_keys_is_bounded(clock):
    throttle = Throttle(window_seconds=60, max_keys=100)
    for i in range(1000):
        throttle.admit({f"user n{i}": 1})
    # The newest 100 are still counted; the oldest were forgotten (a fresh allowance, not a growing table).
    assert throttle.admit({"user n999": 1}) is not None and throttle.admit({"user n900": 1}) is not None
    assert throttle.admit({"user n0": 1}) is None


def test_the_gate_runs_so_many_checks_queues_a_few_and_turns_the_rest_away():
    gate = Gate(running=1, queued=1, wait_seconds=0.2)
    entered, release = threading.Event(), threading.Event()

    def hold():
        with gate.slot():
            entered.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(5)
    outcome = []

    def queued():
        try:
            with gate.slot():
                outcome.append("ran")
        except Busy:
            outcome.append("busy")

    waiter = threading.Thread(target=queued)
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Busy):  # the queue is full: at once
        with gate.slot():
            pass
    assert time.monotonic() - started < 0.1
    waiter.join(5)
    assert outcome == ["busy"]  # waited 0.2 s for the one check
    release.set()
    holder.join(5)
    with gate.slot():  # free again
        pass


@pytest.mark.parametrize(
    "host, key",
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_addresses_are_keyed_by_host_or_ipv6_64(host, key):
    assert address_key(host) == key
