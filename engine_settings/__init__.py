"""Typed configuration from ``AVAIL_*`` environment variables: one settings class per deployable."""

from engine_settings.api import ApiSettings, KeyGrant
from engine_settings.base import CommonSettings
from engine_settings.flow import FlowSettings
from engine_settings.logs import LogSettings, configure_logging

__all__ = ["ApiSettings", "CommonSettings", "FlowSettings", "KeyGrant", "LogSettings", "configure_logging"]
