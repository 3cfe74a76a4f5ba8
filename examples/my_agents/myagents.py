"""A user project: its own tools and a named agent, served by an agentstream worker.

Run it from this folder (the module is imported from the working directory)::

    AGENTSTREAM_APP=myagents:app python -m agentstream.worker
    # or: agentstream worker --app myagents:app

then submit ``{"agent": "support", "input": "Where is order A17?"}`` to the API.
"""

from __future__ import annotations

import asyncio

from agentstream.worker.app import App, ToolContext

app = App()  # the built-in tools (calculator, current_time) stay available

#: this project's "database"
ORDERS = {
    "A17": {"status": "shipped", "carrier": "DHL", "eta": "2026-12-03"},
    "B42": {"status": "preparing", "carrier": None, "eta": "2026-12-08"},
}


@app.tool
def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool(timeout_s=30)
async def lookup_order(order_id: str, ctx: ToolContext) -> dict[str, object]:
    """Look up an order of the ACME shop by its id (such as "A17")."""
    await ctx.emit("progress", {"step": "querying", "order_id": order_id})
    await asyncio.sleep(0)  # a real tool would query its database here
    order = ORDERS.get(order_id.upper())
    if order is None:
        raise LookupError(f"no order {order_id!r}")
    await ctx.emit(
        "progress", {"step": "found", "task_id": ctx.task_id, "attempt": ctx.attempt, "tenant": ctx.tenant}
    )
    return {"order_id": order_id.upper(), **order}


app.agent(
    "support",
    kind="hybrid",
    tools=["lookup_order"],
    model="gpt-4o-mini",
    system_prompt="You are the support agent of ACME. Answer questions about orders.",
    max_iterations=6,
    model_options={"temperature": 0.2},
    description="Answers questions about ACME orders",
)
