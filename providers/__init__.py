"""The upstream side: one module per news API plus the simulator used by demo mode and tests.

Nothing here imports the core (`newsagg`) or the HTTP edge (`handlers`).
"""
