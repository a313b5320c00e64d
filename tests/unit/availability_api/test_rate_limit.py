import asyncio

from limits.aio.storage import MemoryStorage

from availability_api.auth import Principal
from availability_api.rate_limit import SharedRateLimits

PARTNER = Principal(frozenset({"read"}), b"p" * 32, rate_per_s=3)
OTHER_PARTNER = Principal(frozenset({"read"}), b"o" * 32, rate_per_s=3)
STOREFRONT = Principal(frozenset({"read"}), b"s" * 32)


class NoStorage(MemoryStorage):
    async def incr(self, *args: object, **kwargs: object) -> int:
        raise AssertionError("a key without a rate must not touch the storage")

    async def acquire_entry(self, *args: object, **kwargs: object) -> bool:
        raise AssertionError("a key without a rate must not touch the storage")


def takes(limits: SharedRateLimits, principal: Principal, count: int) -> list[int]:
    async def run() -> list[int]:
        return [await limits.take(principal) for _ in range(count)]

    return asyncio.run(run())


class TestSharedRateLimits:
    def test_a_key_gets_its_rate_then_whole_seconds_to_wait(self) -> None:
        limits = SharedRateLimits(MemoryStorage())
        assert takes(limits, PARTNER, 5) == [0, 0, 0, 1, 1]

    def test_keys_are_counted_apart(self) -> None:
        limits = SharedRateLimits(MemoryStorage())
        takes(limits, PARTNER, 4)
        assert takes(limits, OTHER_PARTNER, 3) == [0, 0, 0]

    def test_a_key_without_a_rate_is_not_limited_and_costs_no_storage_call(self) -> None:
        assert set(takes(SharedRateLimits(NoStorage()), STOREFRONT, 1000)) == {0}
