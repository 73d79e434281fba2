"""The `coe` command families, one module each (composed in `coe.cli`)."""
