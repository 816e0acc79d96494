"""The wire protocol between head and node: pure framing, message names and errors.

No I/O happens in this package; callers feed bytes in and take frames out.
"""
