"""Fleet monitoring: metrics, connectivity and availability, fault detection, notifications.

Modules (one job each): ``metrics`` (Prometheus), ``connectivity`` (online/offline,
downtime intervals, availability), ``stream`` and ``webhooks`` (real-time
notifications), ``rules`` (pure fault-detection rules), ``alerts`` (their
lifecycle in Postgres), ``health`` (predictive maintenance).
"""
