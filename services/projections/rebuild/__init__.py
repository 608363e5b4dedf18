"""Zero-downtime rebuilds: ``engine`` (shadow generation, verification, switch), ``verify``
(the comparison report) and ``worker`` (runs rebuilds started over HTTP in projector
processes)."""
