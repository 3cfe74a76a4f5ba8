"""Agents, model client, tools and the arq worker."""
