from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine_settings import ApiSettings, CommonSettings, FlowSettings, KeyGrant


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


class TestApiKeys:
    KEY = "partner-key-0123456789"

    def test_scopes_alone_or_with_a_rate(self) -> None:
        keys = ApiSettings(api_keys={"storefront-key-0123456789": ["read"],  # type: ignore[arg-type]
                                     self.KEY: {"scopes": ["read:amazon"], "rate_per_s": 50}}).api_keys
        assert keys is not None
        grants = {key.get_secret_value(): grant for key, grant in keys.items()}
        assert grants == {"storefront-key-0123456789": KeyGrant(("read",), None),
                          self.KEY: KeyGrant(("read:amazon",), 50)}

    def test_the_json_form_of_the_environment_is_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AVAIL_API_KEYS", f'{{"{self.KEY}": {{"scopes": ["admin"], "rate_per_s": 5}}}}')
        keys = ApiSettings().api_keys
        assert keys is not None and list(keys.values()) == [KeyGrant(("admin",), 5)]

    @pytest.mark.parametrize(("grant", "problem"), [
        ({"scopes": ["read"], "rate_per_s": 0}, "key #1: rate_per_s must be a whole number"),
        ({"scopes": ["read"], "rate_per_s": 2.5}, "key #1: rate_per_s must be a whole number"),
        ({"scopes": ["read"], "rate": 5}, "key #1: unknown field 'rate'"),
        ({"rate_per_s": 5}, "key #1: scopes is missing"),
        (["write"], "key #1: unknown scope 'write'"),
        ("read", "key #1: scopes must be a list"),
    ])
    def test_a_bad_grant_is_refused_by_its_place_never_by_the_key(self, grant: object, problem: str) -> None:
        with pytest.raises(ValidationError) as refused:
            ApiSettings(api_keys={self.KEY: grant})  # type: ignore[dict-item]
        assert problem in str(refused.value) and self.KEY not in str(refused.value)

    @pytest.mark.parametrize("name", ["AVAIL_RATE_LIMIT_PER_S", "AVAIL_RATE_LIMIT_BURST"])
    def test_the_old_per_process_limit_settings_are_refused_with_what_replaces_them(
        self, monkeypatch: pytest.MonkeyPatch, name: str,
    ) -> None:
        monkeypatch.setenv(name, "2000")
        with pytest.raises(ValidationError, match='set "rate_per_s" on the key in AVAIL_API_KEYS'):
            ApiSettings()
