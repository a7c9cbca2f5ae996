"""State shared by every worker and host through Redis (``store.shared``).

- :mod:`proxy.shared.link`: the connection, the state channel (pub/sub), and whether Redis is
  reachable; unreachable, the proxy serves on local state and reconnects on its own.
- :mod:`proxy.shared.replica`: cooldowns, probes, disabled keys, retired models and learned paces,
  kept as local copies that the channel updates (reading them costs no round trip).
- :mod:`proxy.shared.windows`: exact limits across replicas (clients' windows, declared quotas),
  one atomic Lua script a check.
- :mod:`proxy.shared.fleet`: the ``/metrics`` counters summed over the fleet, and the open Live
  sessions.
"""
