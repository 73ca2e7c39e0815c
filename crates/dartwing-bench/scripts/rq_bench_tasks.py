"""Tasks that `rq_bench.py` enqueues; RQ workers import this module (`rq worker -P <scripts dir>`)."""

import time


def noop():
    """Does nothing: measures the queue itself."""
    return None


def sleep_ms(ms):
    """Sleeps `ms` milliseconds: one job of the noisy-neighbour scenario."""
    time.sleep(ms / 1000.0)
