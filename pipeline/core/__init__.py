"""What the Glue jobs and everything else share: the contract, the warehouse's SQL, the job
settings, logs, uploads and error text.

This package ships inside the Glue artifact with ``jobs`` and ``quality`` (``make package``), so
it imports nothing of the twin, the CLI or the workflow builder (the import contracts in
``pyproject.toml`` keep it so).
"""
