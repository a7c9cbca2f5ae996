"""What the rotation learns from an attempt: a quota from a 429, an outlier from timeouts in a
row, a key the upstream calls invalid, a model that is gone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from proxy.config import Member, Rotation
from proxy.metrics import Counters
from proxy.responders import Reply
from proxy.routing.budget import Budget
from proxy.routing.cooldown import Cooldowns, KeyRef
from proxy.routing.pacing import Pacer
from proxy.routing.quota import cooldown_for, read_quota
from proxy.routing.walk import Walk

log = logging.getLogger("l104.rotation")
OUTLIER_FIRST_S = 5.0
OUTLIER_MAX_S = 300.0
# A 429 that says nothing of when to come back (Vertex's dynamic shared quota): the default
# cooldown, doubled for each such 429 in a row, up to this.
BLIND_MAX_S = 900.0


class Learning:
    """Mixed into :class:`proxy.routing.rotation.Rotator`, whose state it updates."""

    rotation: Rotation
    cooldowns: Cooldowns
    counters: Counters
    pacer: Pacer
    budget: Budget
    now: Callable[[], datetime]
    # Timeouts in a row per (responder, model, project), and how long the last rest was.
    streaks: dict[KeyRef, int]
    rests: dict[KeyRef, float]
    # 429s in a row that named no wait, per (responder, model, project).
    blind: dict[KeyRef, int]

    def _disable(self, responder: str, key: int) -> None:
        if self.cooldowns.disable(responder, key, self.rotation.disabled_s):
            log.warning(
                "key %d of responder %s was refused by the upstream as invalid: left out for %.0fs",
                key,
                responder,
                self.rotation.disabled_s,
            )

    def _quota(self, ref: KeyRef, reply: Reply, walk: Walk) -> None:
        model = ref[1]
        self.counters.model_429_count[model] += 1
        signal = read_quota(reply.body)
        # No RetryInfo, no Retry-After (Vertex's dynamic shared quota): a blind 429.
        blind = signal.retry_delay_s is None and not signal.per_day and reply.retry_after is None
        repeats = self.blind.get(ref, 0) if blind else 0
        if signal.per_day:
            self.budget.learn_day(ref, signal.quota_value)
        elif signal.tokens and signal.quota_value:
            self.budget.learn_tokens(ref, signal.quota_value)
        else:
            self.pacer.limited(ref, signal.quota_value, observed=blind and not repeats)
        wait = cooldown_for(signal, reply.retry_after, self.rotation.cooldown_s, self.now())
        if blind:
            # Rest until the oldest call of the last minute leaves it (a per-minute quota's
            # room, as far as this proxy can see), else the default; doubled while it keeps
            # refusing.
            self.blind[ref] = repeats + 1
            frees = self.pacer.window_frees(ref)
            base = min(wait, frees) if frees else wait
            wait = min(BLIND_MAX_S, base * 2**repeats)
        rest = self.cooldowns.cool(ref, wait)
        walk.out_of_quota_for(model, "429, per day" if signal.per_day else "429", rest)

    def _timed_out(self, ref: KeyRef) -> None:
        """Like Envoy's outlier detection: after ``rotation.timeout_streak`` timeouts in a row,
        set the member aside for 5 s, doubling up to 5 minutes while it keeps timing out, so
        the next requests do not each pay the timeout again."""
        streak = self.streaks.get(ref, 0) + 1
        self.streaks[ref] = streak
        limit = self.rotation.timeout_streak
        if not limit or streak < limit:
            return
        rest = min(OUTLIER_MAX_S, self.rests.get(ref, OUTLIER_FIRST_S / 2) * 2)
        self.rests[ref] = rest
        self.cooldowns.cool(ref, rest)
        log.warning("%s timed out %d times in a row: set aside for %.0fs", ref[1], streak, rest)

    def _retire(self, member: Member) -> None:
        if self.cooldowns.retire(member.responder, member.model):
            log.warning(
                "model %s on responder %s answered 404 NOT_FOUND: skipped until restart",
                member.model,
                member.responder,
            )
