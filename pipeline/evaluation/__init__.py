"""The eval core: one run of tasks against one OpenAI-compatible endpoint, from requests to stored, scored
results. ``evaluate`` (evaluate.py) is the entry the CLI, ``make eval`` and the sweep call; the scheduler
(scheduler.py) sends requests through the client (client.py) and commits them to the store; scorecard.py
scores a run's stored outputs and prints its table."""
