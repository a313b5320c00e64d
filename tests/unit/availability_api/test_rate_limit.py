import pytest

from availability_api.rate_limit import RateLimiter

KEY_A = b"a" * 32
KEY_B = b"b" * 32


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestTokenBucket:
    def test_a_burst_passes_then_the_next_request_waits_whole_seconds(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(2, burst=3, clock=clock)
        assert [limiter.take(KEY_A) for _ in range(3)] == [0, 0, 0]
        assert limiter.take(KEY_A) == 1  # half a second to the next token, rounded up to a whole second

    def test_tokens_come_back_at_the_rate_and_never_above_the_burst(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(2, burst=3, clock=clock)
        for _ in range(3):
            limiter.take(KEY_A)
        clock.now += 1.0  # two tokens back
        assert [limiter.take(KEY_A) for _ in range(3)] == [0, 0, 1]
        clock.now += 3600  # refills to the burst, no further
        assert [limiter.take(KEY_A) for _ in range(4)] == [0, 0, 0, 1]

    def test_a_slow_rate_asks_for_a_longer_wait(self) -> None:
        limiter = RateLimiter(0.25, burst=1, clock=FakeClock())
        assert limiter.take(KEY_A) == 0
        assert limiter.take(KEY_A) == 4

    def test_each_key_has_its_own_bucket(self) -> None:
        limiter = RateLimiter(1, burst=1, clock=FakeClock())
        assert limiter.take(KEY_A) == 0
        assert limiter.take(KEY_A) == 1
        assert limiter.take(KEY_B) == 0

    def test_refused_requests_spend_nothing(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(1, burst=1, clock=clock)
        limiter.take(KEY_A)
        for _ in range(100):
            limiter.take(KEY_A)
        clock.now += 1.0
        assert limiter.take(KEY_A) == 0

    def test_the_burst_defaults_to_one_seconds_worth(self) -> None:
        assert RateLimiter(2000).burst == 2000
        assert RateLimiter(0.5).burst == 1

    @pytest.mark.parametrize("rate", [0, 0.0])
    def test_rate_zero_switches_the_limit_off(self, rate: float) -> None:
        limiter = RateLimiter(rate, burst=1)
        assert not limiter.enabled
        assert all(limiter.take(KEY_A) == 0 for _ in range(10_000))
