"""A sweep of matched runs: its file (config.py), expansion, validation, parity and submission (plan.py,
`python -m bench.sweep`), where its runs are (status.py), and the executors that run them (launch.py)."""
