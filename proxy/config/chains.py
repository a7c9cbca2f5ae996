"""The ``chains`` section: each chain's members (``responder:model``, or a mapping with a
declared quota and ``tools``), and its options (``aliases``, ``sticky_turn``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from proxy.config.types import Chain, Member, Quota, ResponderConf
from proxy.names import valid_model_name
from proxy.reader import Reader, show
from proxy.yamlsource import Path_, dotted


def read_quota(r: Reader) -> Quota:
    """``rpm``, ``tpm``, ``rpd`` where they are declared (a responder, or a chain member)."""
    return Quota(
        rpm=r.whole("rpm", 0, high=10_000_000),
        tpm=r.whole("tpm", 0, high=10_000_000_000),
        rpd=r.whole("rpd", 0, high=100_000_000),
    )


def _member(
    r: Reader,
    at: Path_,
    text: Any,
    responders: Mapping[str, ResponderConf],
    quotas: dict[tuple[str, str], Quota],
) -> Member | None:
    """One member at ``at``: ``"responder:model"``, ``"responder"`` (a local one), or
    ``{member, rpm, tpm, rpd, tools}``."""
    source = r.source
    if isinstance(text, dict):
        sub = Reader(source, at, text)
        quota = read_quota(sub)
        named = sub.text("member", required=True)
        tools = sub.flag("tools", True)
        sub.finish()
        member = _member(r, at, named, responders, quotas) if named else None
        if member is not None:
            key = (member.responder, member.model)
            if quotas.get(key, quota) != quota:
                sub.error(None, f"member '{named}' is declared with two different quotas")
            quotas[key] = quota
            member = Member(member.responder, member.model, tools)
        return member
    where = dotted(at)
    if not isinstance(text, str) or not text:
        source.error(
            at,
            f"key '{where}' has {show(source, at, text)}: must be 'responder:model' or 'responder'",
        )
        return None
    name, _, model = text.partition(":")
    conf = responders.get(name)
    if conf is None:
        known = ", ".join(responders) or "none"
        source.error(
            at, f"key '{where}' has value '{text}': no responder '{name}' (known: {known})"
        )
        return None
    if not model:
        if conf.type == "gemini":
            source.error(
                at,
                f"key '{where}' has value '{text}': a gemini member needs a model, "
                f"as '{name}:gemini-2.5-flash'",
            )
            return None
        model = name
    if not valid_model_name(model):
        source.error(at, f"key '{where}' has value '{text}': '{model}' is not a valid model name")
        return None
    return Member(name, model)


def _aliases(sub: Reader) -> tuple[str, ...]:
    out = []
    for i, alias in enumerate(sub.texts("aliases")):
        bare = alias.replace("*", "a").replace("?", "a").replace("[", "").replace("]", "")
        if not valid_model_name(bare):
            where = (*sub.where("aliases"), i)
            sub.source.error(
                where, f"key '{dotted(where)}' has value '{alias}': not a model name or a glob"
            )
            continue
        out.append(alias)
    return tuple(out)


def read_chains(
    r: Reader, responders: Mapping[str, ResponderConf], quotas: dict[tuple[str, str], Quota]
) -> dict[str, Chain]:
    """The chains: each a list of members, or ``{members, aliases, sticky_turn}``. Members
    written as mappings add their declared quota to ``quotas``."""
    out: dict[str, Chain] = {}
    if not r.data:
        r.error(None, "key 'chains' must declare at least one chain")
    for name, value in r.data.items():
        r.seen.add(name)
        if not valid_model_name(name):
            r.bad(name, name, "a chain name must be a valid model name (letters, digits, . _ -)")
            continue
        items, path = value, r.where(name)
        aliases: tuple[str, ...] = ()
        sticky = False
        if isinstance(value, dict):
            sub = r.section(name)
            items, path = sub.raw("members"), sub.where("members")
            aliases = _aliases(sub)
            sticky = sub.flag("sticky_turn", False)
            sub.finish()
        if not isinstance(items, list) or not items:
            r.source.error(
                path,
                f"key '{dotted(path)}' has {show(r.source, path, items)}: "
                "must be a non-empty list of members",
            )
            continue
        members = [_member(r, (*path, i), item, responders, quotas) for i, item in enumerate(items)]
        good = tuple(m for m in members if m is not None)
        if len(set(good)) != len(good):
            r.error(name, f"key '{dotted(r.where(name))}' names a member twice")
        if good:
            out[name] = Chain(name, good, aliases, sticky)
    _check_claims(r, out)
    return out


def _check_claims(r: Reader, chains: Mapping[str, Chain]) -> None:
    """A name claimed by two chains (or a chain's alias that is another chain's name) is an
    error: which chain a request walks must never depend on the order of the file."""
    claimed: dict[str, str] = {}
    for chain in chains.values():
        for alias in chain.aliases:
            other = claimed.get(alias)
            if other is None and alias in chains and alias != chain.name:
                other = alias
            if other is None:
                other = next(
                    (
                        c.name
                        for c in chains.values()
                        if c is not chain
                        and any(a != alias and fnmatch.fnmatchcase(alias, a) for a in c.aliases)
                    ),
                    None,
                )
            if other is not None and other != chain.name:
                r.error(
                    chain.name,
                    f"key 'chains.{chain.name}.aliases' claims '{alias}', which chain "
                    f"'{other}' claims too",
                )
            claimed.setdefault(alias, chain.name)
