"""The engine: the one place that joins a store, executors and the event loop."""
