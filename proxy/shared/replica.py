"""Cooldowns, probes, disabled keys, retired models and learned paces, shared by the fleet.

Each replica keeps its local copies (:class:`~proxy.routing.cooldown.Cooldowns`,
:class:`~proxy.routing.pacing.Pacer`) and reads only them. A change made here is written to
Redis and published on the state channel in one round trip; the other replicas apply it as the
message arrives. Keys in Redis name projects and keys by name and digest, not by position, so
replicas agree even if their key lists are ordered differently. A cooldown only ever grows, in
Redis too (an atomic set-if-greater). On (re)connect, the fleet's state is read and this
replica's is written back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis

from proxy.responders import Responder
from proxy.routing.cooldown import Cooldowns, KeyRef
from proxy.routing.pacing import Pacer
from proxy.shared.link import CHANNEL, Link

PREFIX = "l104:"
DAY_S = 86_400
PROBE_MS = 30_000
# Set a wall-clock deadline if it is later than the one there, clear the probe, and publish.
COOL = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1]) end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""


class Names:
    """Translates between this replica's positions and the fleet's names."""

    def __init__(
        self,
        responders: Callable[[], Mapping[str, Responder]],
        key_ids: Callable[[], Mapping[str, tuple[str, ...]]],
    ) -> None:
        self.responders = responders
        self.key_ids = key_ids

    def ref(self, ref: KeyRef) -> str | None:
        responder = self.responders().get(ref[0])
        if responder is None or ref[2] >= len(responder.project_names):
            return None
        return f"{ref[0]}|{ref[1]}|{responder.project_names[ref[2]]}"

    def local(self, name: str) -> KeyRef | None:
        responder_name, model, project = name.split("|", 2)
        responder = self.responders().get(responder_name)
        if responder is None or project not in responder.project_names:
            return None
        return responder_name, model, responder.project_names.index(project)

    def key(self, responder: str, index: int) -> str | None:
        ids = self.key_ids().get(responder, ())
        return f"{responder}|{ids[index]}" if index < len(ids) else None

    def local_key(self, name: str) -> tuple[str, int] | None:
        responder, kid = name.split("|", 1)
        ids = self.key_ids().get(responder, ())
        return (responder, ids.index(kid)) if kid in ids else None


def _write(*commands: tuple[str, tuple[Any, ...], dict[str, Any]]) -> Callable[[Redis], Any]:
    """A pipeline of ``(command, args, kwargs)``: one round trip."""

    async def run(redis: Redis) -> None:
        pipe = redis.pipeline(transaction=False)
        for command, args, kwargs in commands:
            getattr(pipe, command)(*args, **kwargs)
        await pipe.execute()

    return run


def _ms(left_s: float) -> int:
    return int((time.time() + left_s) * 1000)


def _left(until_ms: float) -> float:
    return until_ms / 1000 - time.time()


class Replica:
    """Wires the local cooldowns and pacer to the link."""

    def __init__(self, link: Link, names: Names, cooldowns: Cooldowns, pacer: Pacer) -> None:
        self.link = link
        self.names = names
        self.cooldowns = cooldowns
        self.pacer = pacer
        self._cool = link.redis.register_script(COOL)
        cooldowns.watcher = self._local_change
        pacer.watcher = self._local_pace
        link.handlers.update(
            cool=self._on_cool, open=self._on_open, off=self._on_off, gone=self._on_gone
        )
        link.handlers["pace"] = self._on_pace
        link.on_up.append(self.resync)

    # -- changes made here, passed on ---------------------------------------------------------

    def _local_change(self, kind: str, what: tuple[object, ...], value: float) -> None:
        if kind == "cool":
            self._publish_cool(what, value)  # type: ignore[arg-type]
        elif kind == "probe_done":
            name = self.names.ref(what)  # type: ignore[arg-type]
            if name is not None:
                message = self.link.message("open", ref=name)
                self.link.spawn(
                    _write(
                        ("delete", (PREFIX + "probe:" + name,), {}),
                        ("publish", (CHANNEL, message), {}),
                    )
                )
        elif kind == "disable":
            responder, index = what
            key = self.names.key(str(responder), int(str(index)))
            if key is not None:
                until = _ms(value)
                message = self.link.message("off", key=key, until=until)
                keys = [PREFIX + "off:" + key]
                self.link.spawn(lambda r: self._cool(keys=keys, args=[until, CHANNEL, message]))
        elif kind == "retire":
            name = "|".join(map(str, what))
            message = self.link.message("gone", m=name)
            self.link.spawn(
                _write(
                    ("set", (PREFIX + "gone:" + name, 1), {"ex": DAY_S}),
                    ("publish", (CHANNEL, message), {}),
                )
            )

    def _publish_cool(self, ref: KeyRef, left: float) -> None:
        name = self.names.ref(ref)
        if name is None:
            return
        until = _ms(left)
        message = self.link.message("cool", ref=name, until=until)
        keys = [PREFIX + "cool:" + name, PREFIX + "probe:" + name]
        self.link.spawn(lambda r: self._cool(keys=keys, args=[until, CHANNEL, message]))

    def _local_pace(self, ref: KeyRef, pace: float, source: str) -> None:
        name = self.names.ref(ref)
        if name is None:
            return
        message = self.link.message("pace", ref=name, pace=pace, src=source)
        self.link.spawn(
            _write(
                ("set", (PREFIX + "pace:" + name, f"{pace}|{source}"), {"ex": DAY_S}),
                ("publish", (CHANNEL, message), {}),
            )
        )

    async def claim_probe(self, ref: KeyRef) -> bool:
        """Is this replica's request the fleet's probe of ``ref``? (True when Redis is down:
        then each replica probes for itself.)"""
        name = self.names.ref(ref)
        if name is None:
            return True

        async def claim(redis: Redis) -> bool:
            key = PREFIX + "probe:" + name
            return bool(await redis.set(key, self.link.replica, nx=True, px=PROBE_MS))

        won = await self.link.call(claim)
        return won is None or won  # None: Redis is away

    # -- changes made elsewhere, applied here -------------------------------------------------

    def _on_cool(self, data: dict[str, Any]) -> None:
        ref = self.names.local(data["ref"])
        if ref is not None:
            self.cooldowns.cooled_elsewhere(ref, _left(float(data["until"])))

    def _on_open(self, data: dict[str, Any]) -> None:
        ref = self.names.local(data["ref"])
        if ref is not None:
            self.cooldowns.probed_elsewhere(ref)

    def _on_off(self, data: dict[str, Any]) -> None:
        key = self.names.local_key(data["key"])
        left = _left(float(data["until"]))
        if key is not None and left > 0:
            self.cooldowns.disabled[key] = max(
                self.cooldowns.disabled.get(key, 0.0), self.cooldowns.clock() + left
            )

    def _on_gone(self, data: dict[str, Any]) -> None:
        responder, model = str(data["m"]).split("|", 1)
        self.cooldowns.retired.add((responder, model))

    def _on_pace(self, data: dict[str, Any]) -> None:
        ref = self.names.local(data["ref"])
        if ref is not None:
            self.pacer.learned_elsewhere(ref, float(data["pace"]), str(data["src"]))

    # -- (re)connect ---------------------------------------------------------------------------

    async def resync(self) -> None:
        """Write this replica's state back (it may have learned things while Redis was away),
        then read the fleet's."""
        redis = self.link.redis
        clock = self.cooldowns.clock
        now = clock()
        for ref, end in list(self.cooldowns.until.items()):
            if end > now:
                self._publish_cool(ref, end - now)
        for (responder, index), end in list(self.cooldowns.disabled.items()):
            key = self.names.key(responder, index)
            if key is not None and end > now:
                await self._cool(
                    keys=[PREFIX + "off:" + key], args=[_ms(end - now), CHANNEL, b"{}"]
                )
        await self.link.settle()
        await self._read(redis)

    async def _read(self, redis: Redis) -> None:
        for kind in ("cool", "off", "gone", "pace"):
            names = [k async for k in redis.scan_iter(match=f"{PREFIX}{kind}:*", count=500)]
            if not names:
                continue
            values = await redis.mget(names)
            for raw, value in zip(names, values, strict=True):
                if value is None:
                    continue
                name = raw.decode().split(":", 2)[2]
                text = value.decode() if isinstance(value, bytes) else str(value)
                if kind == "cool":
                    self._on_cool({"ref": name, "until": text})
                elif kind == "off":
                    self._on_off({"key": name, "until": text})
                elif kind == "gone":
                    self._on_gone({"m": name})
                else:
                    pace, _, source = text.partition("|")
                    self._on_pace({"ref": name, "pace": pace, "src": source})
