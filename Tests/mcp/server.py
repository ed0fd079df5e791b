"""A Model Context Protocol server for Sluice's MCP tests (the Python SDK's FastMCP over the
Streamable HTTP transport, endpoint /mcp). Every tool call is appended to --log as one JSON
line (tool name and arguments as received), so a test can check what reached the server.
The tool get_config answers with the secret in the SECRET_RESULT environment variable."""
import argparse
import json
import os

from mcp.server.fastmcp import FastMCP

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--json-response", action="store_true", help="answer with JSON instead of an event stream")
args = parser.parse_args()

server = FastMCP("sluice-test", host="127.0.0.1", port=args.port, json_response=args.json_response, log_level="WARNING")


def record(tool, arguments):
    with open(args.log, "a", encoding="utf-8") as f:
        f.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    record("echo", {"text": text})
    return "echo: " + text


@server.tool()
def read_file(path: str) -> str:
    """Reads a file (pretends to)."""
    record("read_file", {"path": path})
    return "contents of " + path


@server.tool()
def get_config(service: str) -> str:
    """Returns a service's configuration, secret included."""
    record("get_config", {"service": service})
    return "config for %s:\nregion=eu-west-1\ntoken=%s\n" % (service, os.environ.get("SECRET_RESULT", ""))


@server.tool()
def run_sql(query: str) -> str:
    """Runs a SQL statement (pretends to)."""
    record("run_sql", {"query": query})
    return "ran: " + query


@server.tool()
def transfer_funds(amount: int, to: str) -> str:
    """Moves money (pretends to)."""
    record("transfer_funds", {"amount": amount, "to": to})
    return "transferred %d to %s" % (amount, to)


@server.tool()
def delete_repository(name: str) -> str:
    """Deletes a repository (pretends to)."""
    record("delete_repository", {"name": name})
    return "deleted " + name


@server.tool()
def write_file(path: str, content: str) -> str:
    """Writes a file (pretends to)."""
    record("write_file", {"path": path})
    return "wrote " + path


server.run(transport="streamable-http")
