"""An MCP client for Sluice's MCP tests: the Python SDK's client over the Streamable HTTP
transport. Prints one JSON object: {"tools": [...]} for `list`, {"result": ...} or
{"error": {"code", "message", "data"}} for `call NAME ARGUMENTS_JSON`."""
import argparse
import asyncio
import json

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("command", choices=["list", "call"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("arguments", nargs="?", default="{}")
    a = parser.parse_args()
    headers = {"Authorization": "Bearer " + a.key}
    async with streamablehttp_client(a.url, headers=headers, timeout=60) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            if a.command == "list":
                listed = await session.list_tools()
                out = {"tools": sorted(t.name for t in listed.tools)}
            else:
                try:
                    result = await session.call_tool(a.name, json.loads(a.arguments))
                    out = {"result": result.model_dump(mode="json")}
                except McpError as e:
                    out = {"error": e.error.model_dump(mode="json")}
    print(json.dumps(out))


asyncio.run(main())
