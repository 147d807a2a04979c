import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "dev",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("FUNCTRACE_HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    # Compiled code goes to a per-run cache directory, never the user's.
    import tempfile

    import functrace as ft

    ft.config.update("jit_cache_dir", tempfile.mkdtemp(prefix="functrace-test-cache-"))
