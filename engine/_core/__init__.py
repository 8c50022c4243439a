"""The job core: pure decisions over plain data (no asyncio, httpx, sqlite3 or time).

Drivers (``AsyncEngine``, ``Worker``) own the sockets, the clock, the heap or
the leases; they hand the core a job's state, a reply and the time, and get
back a step to publish. This is the sans-I/O shape of h11: one core serves
every driver, and is tested with plain values.
"""
