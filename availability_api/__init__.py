"""The query API: availability of SKUs by channel and node, read from the Redis projection."""

from availability_api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
