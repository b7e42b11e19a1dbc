"""watcher's web app (Starlette)."""
