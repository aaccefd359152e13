"""The executor agent and its broker adapters."""
