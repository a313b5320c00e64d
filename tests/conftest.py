import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=150, deadline=None)
settings.register_profile(
    "ci", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
