"""Pure logic of the head: specs, inventory, placement, plans.

No asyncio, no network, no process I/O.
"""
