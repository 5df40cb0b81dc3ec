"""Every ``stylestream bench ...``: benchmarks that print numbers (ratios against a baseline run
in the same process), with one timing helper (:mod:`benchmarks.timing`)."""
