"""The statepoll engine: polling runtime, hooks, audit log, CLI, simulators."""
