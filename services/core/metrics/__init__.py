"""Prometheus metrics: what each process counts (``definitions``), what is read from the
database and the log when ``/metrics`` is scraped (``collectors``), and the text answer
(``exposition``).

Nothing here imports fastapi or kafka: the HTTP route (``services/api/routes/metrics.py``) and
the adapters import these modules, never the other way round.
"""
