"""The client-side quota: slots in order, shared by threads, following the server."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etoro_nb.client import EtoroClient
from etoro_nb.ratelimit import WINDOW_MARGIN, Quota, RateLimiter
from etoro_nb.sandbox import SandboxServer


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_slots_fill_then_wait_for_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Quota(read_limit=3, write_limit=1, window=10), clock=clock)
    assert [limiter.reserve("k", "read") for _ in range(3)] == [0, 0, 0]
    later = pytest.approx(10 + WINDOW_MARGIN)  # booked a window (and a margin) later
    assert limiter.reserve("k", "read") == later
    assert limiter.reserve("k", "read") == later
    assert limiter.reserve("k", "write") == 0  # writes are counted apart
    assert limiter.reserve("other", "read") == 0  # and each key apart
    clock.t += 4
    assert limiter.reserve("k", "read") == pytest.approx(6 + WINDOW_MARGIN)


def test_threads_share_it_without_overbooking() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Quota(read_limit=5, window=1), clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            w = limiter.reserve("k", "read")
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots = sorted(clock.t + w for w in waits)
    # No window of one second ever holds more than five requests.
    assert all(slots[i + 5] - slots[i] >= 1 for i in range(len(slots) - 5))
    # 40 requests at 5 per second: the last starts 7 windows on.
    assert max(waits) == pytest.approx(7 * (1 + WINDOW_MARGIN))


def test_follows_the_servers_headers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Quota(read_limit=60, window=60), clock=clock)
    limiter.reserve("k", "read")
    limiter.observe("k", "read", {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "2"})
    # The server counted 8 where this limiter knew of 1: book the other 7, adopt limit 10.
    assert [limiter.reserve("k", "read") for _ in range(3)] == pytest.approx(
        [0, 0, 60 + WINDOW_MARGIN])
    limiter.observe("k", "read", {"x-ratelimit-limit": "oops"})  # ignored


def test_a_long_load_meets_no_429(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient]
) -> None:
    server = make_server(read_limit=10, limit_window=60)
    clock = FakeClock()
    client = make_client(server, limiter=RateLimiter(Quota(read_limit=10, window=60),
                                                     clock=clock))
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # time passes for both sides, instantly
        slept.append(seconds)
        clock.t += seconds
        server.sandbox.clock.advance(seconds)

    client._sleep = sleep  # type: ignore[method-assign]
    for _ in range(35):
        client.me()
    assert len(slept) == 3 and sum(slept) == pytest.approx(3 * (60 + WINDOW_MARGIN))


@given(limit=st.integers(1, 6),
       gaps=st.lists(st.sampled_from([0.0, 0.001, 0.5, 3.0, 9.99, 10.0, 25.0]), min_size=1,
                     max_size=60))
def test_no_window_ever_holds_more_than_the_limit(limit: int, gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(Quota(read_limit=limit, window=10), clock=clock)
    sends = []
    for gap in gaps:
        clock.t += gap
        sends.append(clock.t + limiter.reserve("k", "read"))
    assert sends == sorted(sends)  # first come, first served
    assert all(sends[i + limit] - sends[i] >= 10 for i in range(len(sends) - limit))


def test_on_a_simulated_clock_the_quota_follows_simulated_time() -> None:
    import etoro_nb as enb
    from etoro_nb import errors
    from etoro_nb.sandbox import SandboxConfig
    from tests.conftest import START

    with enb.connect(sandbox=SandboxConfig(clock=START, read_limit=3)) as client:
        assert [client.me().username for _ in range(3)] == ["sandbox.owner"] * 3
        # Real waiting can't move a simulated clock: the refusal comes at once.
        with pytest.raises(errors.RateLimitError):
            client.me()
        assert client.sandbox is not None
        client.sandbox.sandbox.clock.advance(61)  # the window passes in simulated time
        assert client.me().username == "sandbox.owner"
