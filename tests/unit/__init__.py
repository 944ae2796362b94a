"""Unit tests: no services.

One file per module: tests/unit/test_<path>.py, where <path> is the module's import path without its top
package `udfs.` or `flink_jobs.` (the two share no module path), dots written as underscores, and a package's
own code (its __init__.py) tested in test_<package>.py. So udfs/archive.py: test_archive.py;
flink_jobs/streaming/sinks/archive.py: test_streaming_sinks_archive.py; console/throttle.py:
test_console_throttle.py; udfs/detectors/__init__.py: test_detectors.py. A test goes where the code it checks
lives, even when it drives that code through another module. Files about deployment, Grafana, the layout,
fuzzing or a property across modules are named for what they check: test_deploy_*, test_grafana_*,
test_layout, test_fuzz, test_traffic, test_corpora, test_evaluation, test_scan.
"""
