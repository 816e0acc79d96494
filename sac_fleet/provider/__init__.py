"""The built-in Anthropic-Messages-compatible provider for tests, demos and air-gapped smoke tests.

Deterministic by default; scriptable replies, tool calls and faults.
"""
