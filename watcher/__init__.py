"""watcher: keeps a marketing team working when the AI tools it depends on fail."""

__version__ = "0.1.0"
