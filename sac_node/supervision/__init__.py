"""Engine supervision: states, the pure restart policy, the asyncio supervisor.

The policy decides; the supervisor only sleeps and spawns.
"""
