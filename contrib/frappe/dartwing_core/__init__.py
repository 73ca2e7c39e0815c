"""Dartwing Core modules for a Frappe app: ``dartwing_core.realtime.redis_adapter`` publishes
realtime events to the Dartwing Core runtime (the path the socket.io scaling spec names)."""
