from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine_settings import ApiSettings, CommonSettings, FlowSettings


class TestRedisUrl:
    @pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.example:6380/2",
                                     "unix:///run/redis.sock?db=1"])
    def test_single_redis_urls_are_taken(self, url: str) -> None:
        assert CommonSettings(redis_url=url).redis_url.get_secret_value() == url  # type: ignore[arg-type]

    @pytest.mark.parametrize("settings", [CommonSettings, FlowSettings, ApiSettings])
    def test_a_url_that_does_not_parse_is_refused_naming_the_setting_not_the_password(self, settings: type) -> None:
        with pytest.raises(ValidationError) as refused:
            settings(redis_url="http://:hunter2@cache:6379")
        message = str(refused.value)
        assert "AVAIL_REDIS_URL must look like redis://" in message and "hunter2" not in message

    def test_a_cluster_url_is_refused_for_now_with_what_to_give_instead(self) -> None:
        with pytest.raises(ValidationError, match="not supported by this version yet"):
            CommonSettings(redis_url="redis+cluster://10.0.0.1:7000,10.0.0.2:7000")  # type: ignore[arg-type]
