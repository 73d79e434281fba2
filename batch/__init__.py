"""Batch runs: manifests, the run ledger, the graph over many rows, engines and exports."""
