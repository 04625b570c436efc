"""Agents: the built-in tool-calling agent (loop.py, tools.py)."""
