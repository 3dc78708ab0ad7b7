"""newsagg core: everything between the HTTP edge (`handlers`) and the upstreams (`providers`)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newsagg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
