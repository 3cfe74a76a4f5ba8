"""The app the human-in-the-loop tests serve (``tests.hitl_app:app``): the built-ins plus
``ask_user``, a tool that always waits for approval, and one that waits for a file (a
test lets it go on by creating the file)."""

import asyncio
import os

from agentstream import App

app = App(ask_user=True, name="hitl")


@app.tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"


@app.tool()
async def wait_for_file(path: str) -> str:
    """Wait until a file exists (at most a minute)."""
    for _ in range(1200):
        if await asyncio.to_thread(os.path.exists, path):
            return "there"
        await asyncio.sleep(0.05)
    return "never came"
