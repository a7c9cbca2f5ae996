"""A pydantic-ai agent with two tools, as a user would write it, run as its own process by
``test_agent_loops.py`` (pydantic-ai parses its tools' source with ``ast``; its own interpreter
keeps that apart from pytest's). Argument: the proxy's OpenAI-compatible base URL. Prints the
tools it ran and the agent's output as one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider


async def main(base_url: str) -> None:
    provider = OpenAIProvider(base_url=base_url, api_key="client-key")
    agent = Agent(OpenAIChatModel("default", provider=provider))
    called: list[str] = []

    @agent.tool_plain
    def weather(city: str) -> str:
        """The weather in a city."""
        called.append(f"weather:{city}")
        return f"sunny in {city}"

    @agent.tool_plain
    def clock(city: str) -> str:
        """The time in a city."""
        called.append(f"clock:{city}")
        return f"noon in {city}"

    result = await agent.run("What is the weather and the time in Rome?")
    print(json.dumps({"called": called, "output": result.output}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
