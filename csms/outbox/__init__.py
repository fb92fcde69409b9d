"""Kafka fan-out of CSMS events through a transactional outbox.

The ``events`` table is the outbox: every event is appended in the same
database transaction as the state change it describes (:mod:`csms.central`),
so an event exists exactly when its state change does. A relay task
(:mod:`csms.outbox.relay`) publishes unpublished rows to Kafka in id order
and marks each row once the broker has acknowledged all its messages; a crash
between publish and mark re-sends (at-least-once, consumers dedupe by
``event_id``), never drops.

Modules: :mod:`~csms.outbox.topics` (event type -> topic, topic settings),
:mod:`~csms.outbox.envelope` (pure row -> message building),
:mod:`~csms.outbox.store` (the SQL), :mod:`~csms.outbox.relay` (publishing),
:mod:`~csms.outbox.service` (start-up, lag, pruning), :mod:`~csms.outbox.admin`
(``csms kafka-init``), :mod:`~csms.outbox.consume` (``csms consume``) and
:mod:`~csms.outbox.schemas` (JSON Schemas of every message).
"""
