"""The leaders' weekly reports: the roster, the voice of the customer, complaint trends, handoff
follow-through and joint KPIs, each read from the ReportFacts read model (``facts``) and the
other read models' tables by indexed queries, never by folding the timeline per request."""
