"""Where a batch run's rows are computed besides this process (the ledger stays here)."""
