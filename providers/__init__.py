"""The upstream side: one client module per news API, each turning its raw answers into
canonical articles.

Nothing here imports the core (`newsagg`), the HTTP edge or the simulator.
"""
