"""``import dartwing_realtime`` is ``dartwing_core.realtime.redis_adapter`` (one module, one Redis
client and channel setting), for code that used the earlier single-file module."""

import sys

from dartwing_core.realtime import redis_adapter

sys.modules[__name__] = redis_adapter
