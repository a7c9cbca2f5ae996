"""Routing: which members a request walks, and when each may be tried (cooldowns, quotas, paces)."""
