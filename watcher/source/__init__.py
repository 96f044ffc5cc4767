"""The control plane as a stream of `watcher._types.Observation`.

    source = Source(config, node)          # config: SourceConfig (`control_plane:`), node: NodeRef
    async for obs in source.run():         # runs until the loop stops iterating
        ...                                # obs.replicas is None when the API could not be read
    source.request_refresh("manual")       # from anywhere in the loop: read now
    source.stats                           # SourceStats, for metrics

What triggers a read of GET .../connections (each read is one Observation):
- "startup": the first read, and the catch-up read when the event stream first opens;
- "poll": every `poll_interval` after the last read (the backstop; after errors, a jittered
  exponential backoff up to `backoff_max`, at least a 429's retry-after);
- "event": an event on the node's SSE stream (`subscribe: auto|sse`; auto falls back to
  polling only when the control plane has no stream, e.g. Cloudflare). Reconnects resume with
  Last-Event-ID, so events missed while disconnected are replayed;
- "webhook": a notification POSTed to the webhook receiver with the right `cf-webhook-auth`;
- "manual": request_refresh().
Triggers coalesce: while a read is pending, more triggers add nothing; one arriving during a read
causes exactly one more read. `received_at` is the monotonic time of the first trigger of a read.
With `learn_routes`, teamnet routes of OTHER nodes are read every `routes_interval` and attached
to every Observation as `routes`. The daemon turns it on from `routes.learn.teamnet_routes`
(WatcherConfig.source_config()).
"""

from .._net import parse_listen
from ._parse import learned_routes, parse_replica, parse_replicas
from ._source import Source
from ._stats import SourceStats
from ._webhook import WebhookReceiver
from .config import NodeRef, RateLimitConfig, SourceConfig, WebhookConfig

__all__ = [
    "NodeRef",
    "RateLimitConfig",
    "Source",
    "SourceConfig",
    "SourceStats",
    "WebhookConfig",
    "WebhookReceiver",
    "learned_routes",
    "parse_listen",
    "parse_replica",
    "parse_replicas",
]
