"""Δϖ maps of a ``zpdist zeropoint`` output of up to 10⁸ rows and more: the data engine behind the dashboard's
Gaia-scale section, usable and tested without Panel.

Three modules, one job each:

- :mod:`zpdist.zeropoint_maps.table` opens the output (Δϖ and its training-domain flag, joined row by row with
  G, BP−RP and Teff from the output or from the input file of the same name) as a dask DataFrame;
- :mod:`zpdist.zeropoint_maps.build` makes **one** dask pass over its partitions into fine fixed-grid 2-D
  histograms, cached beside the partitions;
- :mod:`zpdist.zeropoint_maps.histograms` holds those histograms and re-bins any window of them to about screen
  resolution by exact block sums.

Design, chosen by measuring (``benchmarks/bench_dashboard.py --sections gaia``, on a shared 2-core CPU with other
jobs running): datashader re-aggregating the table persisted as a dask DataFrame scans every row on every pan
or zoom, so its cost grows with the table: 0.17–0.19 s per map and zoom at 10⁷ rows, about 2 s at 10⁸
(extrapolated) with 1.7 GB held in memory, and a zoom redraws every linked map. Instead, one pass builds, for
each plane (G, BP−RP), (Teff, G), (BP−RP, Teff), each side of the training-domain flag, and each statistic
(stars, stars with a Δϖ, ΣΔϖ, ΣΔϖ²), histograms of 1024² bins (200 MB in memory), and every view re-bins the
visible window of those arrays: 0.015–0.04 s per map and zoom (Bokeh update included), whatever the number of
rows. The pass runs at 1.5–1.65 million rows/s (6–7 s for 10⁷ rows, about 65 s for 10⁸, once); the grid's
ranges come from the Parquet footers' column statistics (no extra pass; a dask min/max pass only when a file
lacks them). The cache (13 MB at 10⁷ rows) is keyed by the files' names, sizes and modification times, so a
restart reads it back in about a second. The price of a precomputed grid: zooming in below the fine bin shows
fine bins.
"""
