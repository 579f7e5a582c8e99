import pytest

from unet_lib.checks import reset_hints, set_language


@pytest.fixture(autouse=True)
def _fresh_hints():
    """Every test starts as a learner's first try: the first hint of each failure, in English."""
    reset_hints()
    set_language("en")
    yield
    reset_hints()
    set_language("en")
