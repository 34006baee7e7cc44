"""The bottom layer: corpus store, storage, specs and settings, errors, dataset loading,
metrics, text helpers and the hit / ranking types. Imports nothing above it."""

__version__ = "0.1.0"
