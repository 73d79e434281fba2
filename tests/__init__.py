"""coe's test suite (a package, so `tests.*` here always wins over a `tests` package some dependency installs)."""
