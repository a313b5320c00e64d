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

    @pytest.mark.parametrize("url", ["redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
                                     "rediss+cluster://app:s3cret@cache-0:6380", "redis+cluster://10.0.0.1:7000/0"])
    def test_cluster_urls_are_taken(self, url: str) -> None:
        assert CommonSettings(redis_url=url).redis_url.get_secret_value() == url  # type: ignore[arg-type]

    @pytest.mark.parametrize(("url", "problem"), [
        ("redis+cluster://:hunter2@10.0.0.1", "every node must be host:port, got '10.0.0.1'"),
        ("redis+cluster://:hunter2@10.0.0.1:7000,:7001", "every node must be host:port, got ':7001'"),
        ("redis+cluster://:hunter2@10.0.0.1:99999", "every node must be host:port"),
        ("redis+cluster://:hunter2@10.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://:hunter2@10.0.0.1:7000?db=2", "no ?options"),
    ])
    def test_a_cluster_url_that_does_not_parse_is_refused_naming_the_setting_not_the_password(
        self, url: str, problem: str,
    ) -> None:
        with pytest.raises(ValidationError) as refused:
            CommonSettings(redis_url=url)  # type: ignore[arg-type]
        message = str(refused.value)
        assert "AVAIL_REDIS_URL" in message and problem in message and "hunter2" not in message
