"""Realtime publishing to the Dartwing Core gateway (see ``redis_adapter``)."""
