"""Reading ``/metrics`` in tests: every sample of one scrape, looked up by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One answer of ``GET /metrics``, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.samples = [
            s for family in text_string_to_metric_families(text) for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None when the scrape has none."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None

    def labelled(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of ``name``: sorted label pairs -> value."""
        return {tuple(sorted(s.labels.items())): s.value for s in self.samples if s.name == name}


def scrape(http: httpx.Client) -> Scrape:
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(answer.text)
