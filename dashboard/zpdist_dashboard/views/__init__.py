"""The dashboard's tabs, one module each: zeropoint, distances, abundances (and their shared pieces in base)."""
