"""The review console: auditors triage the job's violations in a browser or through a JSON API."""
