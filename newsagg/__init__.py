"""newsagg core: settings, the feed, cache, store, keys, rate limits, CLI.

Between the HTTP edge (`edge`, `handlers`) and the upstreams (`providers`); it imports
nothing from an HTTP framework and names no status code or header.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newsagg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
