"""Test oracles and validators: the Grafana emulator, the deploy-file validators, the demo checker.

Not in the wheel or the job image: only tests, benches and `make demo` (run from a checkout) use them.
"""
