"""Client budgets held across replicas: one atomic Lua script checks a client's day and month
and reserves the request's estimate in both, so the fleet never spends past a budget; the real
cost then replaces the estimate (written without waiting).

Keys: ``l104:spent:{client}:{period}`` (a hash of ``usd`` and ``tokens``), expiring a day after
their period ends.
"""

from __future__ import annotations

from redis.asyncio import Redis

from proxy.shared.link import Link

PREFIX = "l104:spent:"
RESERVE = """
local limits = {tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])}
local usd, tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
local day_usd = tonumber(redis.call('HGET', KEYS[1], 'usd') or '0')
local day_tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
local month_usd = tonumber(redis.call('HGET', KEYS[2], 'usd') or '0')
if limits[1] > 0 and day_usd + usd > limits[1] then return {0, 'usd_per_day', tostring(day_usd)} end
if limits[2] > 0 and month_usd + usd > limits[2] then
  return {0, 'usd_per_month', tostring(month_usd)}
end
if limits[3] > 0 and day_tokens + tokens > limits[3] then
  return {0, 'tokens_per_day', tostring(day_tokens)}
end
redis.call('HINCRBYFLOAT', KEYS[1], 'usd', usd)
redis.call('HINCRBY', KEYS[1], 'tokens', tokens)
redis.call('HINCRBYFLOAT', KEYS[2], 'usd', usd)
redis.call('HINCRBY', KEYS[2], 'tokens', tokens)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {1, '', '0'}
"""


class FleetSpending:
    def __init__(self, link: Link) -> None:
        self.link = link
        self._reserve = link.redis.register_script(RESERVE)

    async def reserve(
        self,
        client: str,
        periods: tuple[str, str],
        limits: tuple[float, float, int],
        usd: float,
        tokens: int,
        lives_ms: tuple[int, int],
    ) -> tuple[str, float] | bool | None:
        """Reserve ``usd`` and ``tokens`` in the client's day and month: True when they fit,
        ``(budget, spent)`` when they would pass one, None when Redis is away."""
        keys = [f"{PREFIX}{client}:{periods[0]}", f"{PREFIX}{client}:{periods[1]}"]
        args: list[str | int | float] = [*limits, repr(usd), tokens, *lives_ms]

        async def run(redis: Redis) -> list[object]:
            answer: list[object] = await self._reserve(keys=keys, args=args, client=redis)
            return answer

        answer = await self.link.call(run)
        if answer is None:
            return None
        ok, budget, spent = answer
        if int(str(ok)):
            return True
        name = budget.decode() if isinstance(budget, bytes) else str(budget)
        value = spent.decode() if isinstance(spent, bytes) else str(spent)
        return name, float(value)

    def settle(self, client: str, periods: tuple[str, str], usd: float, tokens: int) -> None:
        """Replace a reserved estimate by the real cost: add the difference (not waited for)."""
        if not usd and not tokens:
            return
        keys = [f"{PREFIX}{client}:{period}" for period in periods]

        async def run(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hincrbyfloat(key, "usd", usd)
                    pipe.hincrby(key, "tokens", tokens)
                await pipe.execute()

        self.link.spawn(run)
