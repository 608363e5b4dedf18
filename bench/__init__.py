"""``python -m bench``: OneVoice throughput and latency on Kafka + PostgreSQL, beside raw limits.

Generates realistic events, measures the raw limits (bare kafka-python producer and consumer
loops, bare PostgreSQL bulk insert of the same rows) and the service paths (batch ingest over
HTTP, projection, end-to-end lag, replay, timeline queries) in one run, prints a table and
writes JSON. See ``python -m bench --help``.
"""
