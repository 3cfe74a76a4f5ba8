"""The app the SDK's human-in-the-loop tests serve: the built-ins plus ``ask_user`` and a
tool that always waits for approval."""

from agentstream import App

app = App(ask_user=True, name="sdk-hitl")


@app.tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"
