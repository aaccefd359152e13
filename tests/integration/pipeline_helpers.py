"""Re-exports `tests.support.pipeline` for test_kill_switch.py until it moves; import from there."""

from tests.support.pipeline import eventually

__all__ = ["eventually"]
