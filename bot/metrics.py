"""Prometheus metrics (``GET /metrics``). Labels carry channels and statuses,
never anything about a resident."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.inbound = Counter(
            "kiezstimme_inbound_messages_total", "Messages stored in the inbox", ["channel"], registry=self.registry
        )
        self.duplicates = Counter(
            "kiezstimme_inbound_duplicates_total",
            "Redelivered webhooks acknowledged without effect",
            ["channel"],
            registry=self.registry,
        )
        self.processed = Counter(
            "kiezstimme_inbound_processed_total",
            "Inbox messages run through the dialogue",
            ["result"],
            registry=self.registry,
        )
        self.outbound = Counter(
            "kiezstimme_outbound_messages_total",
            "Outbox messages by final or retry status",
            ["channel", "status"],
            registry=self.registry,
        )
        self.retries = Counter(
            "kiezstimme_outbound_retries_total",
            "Send attempts that will be retried",
            ["channel"],
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "kiezstimme_send_latency_seconds",
            "Time a provider took to accept one message",
            ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "kiezstimme_outbox_queue_depth",
            "Messages waiting in the outbox",
            ["channel", "priority"],
            registry=self.registry,
        )
        self.inbox_depth = Gauge("kiezstimme_inbox_pending", "Inbox messages not yet processed", registry=self.registry)
        # abuse limits (bot/delivery/limits.py)
        self.flood_notices = Counter(
            "kiezstimme_flood_notices_total",
            "Senders told they send too many messages at once (a cooling-off begins)",
            ["channel"],
            registry=self.registry,
        )
        self.flood_skipped = Counter(
            "kiezstimme_flood_skipped_total",
            "Messages acknowledged without a dialogue step or reply during a sender's cooling-off",
            ["channel"],
            registry=self.registry,
        )
        self.reply_loops = Counter(
            "kiezstimme_reply_loops_total",
            "Residents whose replies were paused: the same reply again and again (a loop with another bot)",
            ["channel"],
            registry=self.registry,
        )
        self.loop_suppressed = Counter(
            "kiezstimme_loop_guard_suppressed_total",
            "Replies not sent while a resident's replies are paused by the loop guard",
            ["channel"],
            registry=self.registry,
        )
        self.webchat_refused = Counter(
            "kiezstimme_webchat_new_clients_refused_total",
            "New web chat conversations refused: their source started too many within an hour",
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
