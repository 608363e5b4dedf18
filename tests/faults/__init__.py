"""Fault injection on real Kafka + PostgreSQL: "nothing stalls, nothing is silently dropped".

Each test breaks one thing for real (SIGKILL of a projector or of the broker, a PostgreSQL
stopped with ``-m immediate``, projector processes joining and leaving the group) while events
keep arriving, then checks the read models against a fresh pure fold of the same log.
"""
