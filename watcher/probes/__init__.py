"""watcher's own measurements: API clients, latency probes, canary prompts, the network check."""
