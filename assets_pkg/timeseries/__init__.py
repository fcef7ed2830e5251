"""Time series: catalog -> load -> resample -> merge -> export -> analysis, one UTC day per partition.

Pure modules (no dagster import): catalog, load, resample, merge, export, analysis.
Dagster layer: assets, checks, definitions.
"""
