"""Node-side RPC handlers, one module per method group.

Each handler documents its wire schema in its docstring.
"""
