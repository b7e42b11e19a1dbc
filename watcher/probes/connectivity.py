"""Moved to :mod:`watcher.connectivity`: HTTP checks ask "is it them or us?" too, not only probes."""

from watcher.connectivity import Connectivity, check_network

__all__ = ["Connectivity", "check_network"]
