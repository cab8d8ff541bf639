#!/usr/bin/env python3
"""Writes the Grafana dashboards, one per workload, to deploy/base/monitoring/dashboards/.

The JSON files are generated so that the five dashboards share their panels' queries; edit
this file and run it (`python3 deploy/dashboards.py`), never the JSON. deploy/check.py
refuses a checkout where the files differ from what this writes, checks every query with
`promtool`, and the system test finds every metric the queries name in a real scrape.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "base" / "monitoring" / "dashboards"
SERVICES = ["gateway", "occupations", "lmi", "casenotes", "ambassadors"]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panel(title, unit, *targets, description=""):
    """A time series panel; `targets` are (expr, legend) pairs, `$job` the workload."""
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + index), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for index, (expr, legend) in enumerate(targets)
        ],
    }


SEL = 'job="$job", namespace="$namespace"'

GRPC = [
    panel("gRPC calls by method and code", "reqps",
          (f"sum by (method, code) (rate(careers_grpc_server_requests_total{{{SEL}}}[5m]))", "{{method}} {{code}}")),
    panel("gRPC p99 by method", "s",
          (f"histogram_quantile(0.99, sum by (method, le) (rate(careers_grpc_server_duration_seconds_bucket{{{SEL}}}[5m])))",
           "{{method}}"),
          description="Time to the answer's headers."),
]

GATEWAY = [
    panel("Requests by route and status class", "reqps",
          (f"sum by (route, status_class) (rate(careers_http_requests_total{{{SEL}}}[5m]))",
           "{{route}} {{status_class}}")),
    panel("5xx ratio by route", "percentunit",
          (f'sum by (route) (rate(careers_http_requests_total{{{SEL}, status_class="5xx"}}[5m]))'
           f" / sum by (route) (rate(careers_http_requests_total{{{SEL}}}[5m]))", "{{route}}"),
          description="Alert CareersRouteErrors: over 5 % for 5 minutes."),
    panel("p99 by route", "s",
          (f"histogram_quantile(0.99, sum by (route, le) (rate(careers_http_request_duration_seconds_bucket{{{SEL}}}[5m])))",
           "{{route}}"),
          description="Alert CareersRouteSlow: over 1 s for 10 minutes (LMI submissions excepted)."),
    panel("Requests by caller kind", "reqps",
          (f"sum by (caller_kind) (rate(careers_http_requests_total{{{SEL}}}[5m]))", "{{caller_kind}}")),
    panel("Refused by the front door", "reqps",
          (f"sum by (reason) (rate(careers_gateway_refused_total{{{SEL}}}[5m]))", "{{reason}}"),
          description="Rate limits, per-caller in-flight limits and load shedding."),
    panel("Upstream calls by service and code", "reqps",
          (f"sum by (service, code) (rate(careers_gateway_upstream_requests_total{{{SEL}}}[5m]))",
           "{{service}} {{code}}")),
    panel("Upstream p99 by service", "s",
          (f"histogram_quantile(0.99, sum by (service, le) (rate(careers_gateway_upstream_duration_seconds_bucket{{{SEL}}}[5m])))",
           "{{service}}")),
]

STORE = [
    panel("Store connections", "short",
          (f"sum by (store, state) (careers_store_connections{{{SEL}}})", "{{store}} {{state}}"),
          (f"sum by (store) (careers_store_connections_max{{{SEL}}})", "{{store}} max"),
          description="In use at the maximum means callers queue for a connection."),
    panel("Calls refused: store busy", "reqps",
          (f"sum(rate(careers_store_busy_total{{{SEL}}}[5m]))", "store_busy"),
          description="UNAVAILABLE store_busy: no store connection came free in time."),
]

EVENTS = [
    panel("Outbox", "short",
          (f"max(careers_outbox_pending{{{SEL}}})", "pending"),
          description="Events committed but not yet published."),
    panel("Oldest unpublished event", "s",
          (f"max(careers_outbox_oldest_age_seconds{{{SEL}}})", "age"),
          description="Alert CareersOutboxStuck: over 60 s for 2 minutes."),
    panel("Events published", "ops",
          (f"sum by (stream) (rate(careers_events_published_total{{{SEL}}}[5m]))", "{{stream}}"),
          (f"sum by (stream) (rate(careers_outbox_republished_total{{{SEL}}}[5m]))", "{{stream}} republished")),
    panel("Events applied, redelivered, dead-lettered", "ops",
          (f"sum by (durable) (rate(careers_events_applied_total{{{SEL}}}[5m]))", "{{durable}} applied"),
          (f"sum by (durable) (rate(careers_events_redelivered_total{{{SEL}}}[5m]))", "{{durable}} redelivered"),
          (f"sum by (durable) (increase(careers_events_dead_lettered_total{{{SEL}}}[5m]))", "{{durable}} dead-lettered")),
    panel("Consumer lag", "short",
          (f"max by (durable) (careers_consumer_lag{{{SEL}}})", "{{durable}}"),
          description="Alert CareersConsumerLagGrowing: growing for 15 minutes."),
    panel("Propagation p99", "s",
          (f"histogram_quantile(0.99, sum by (durable, le) (rate(careers_event_propagation_seconds_bucket{{{SEL}}}[5m])))",
           "{{durable}}"),
          description="From the producer's commit to this service's commit of the effect."),
    panel("NATS connected", "short",
          (f"careers_nats_connected{{{SEL}}}", "{{pod}}"),
          description="Alert CareersNatsDisconnected: 0 for 2 minutes."),
]

PROCESS = [
    panel("CPU", "percentunit", (f"sum by (pod) (rate(process_cpu_seconds_total{{{SEL}}}[5m]))", "{{pod}}")),
    panel("Resident memory", "bytes", (f"sum by (pod) (process_resident_memory_bytes{{{SEL}}})", "{{pod}}")),
    panel("Open file descriptors", "short", (f"sum by (pod) (process_open_fds{{{SEL}}})", "{{pod}}")),
    panel("Builds running", "short",
          (f"count by (version, commit) (careers_build_info{{{SEL}}})", "{{version}} {{commit}}")),
]


def dashboard(service):
    panels = (GATEWAY + GRPC if service == "gateway" else GRPC + STORE + EVENTS) + PROCESS
    laid_out = []
    for index, item in enumerate(panels):
        item = dict(item, id=index + 1, gridPos={"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)})
        laid_out.append(item)
    return {
        "uid": f"careers-{service}",
        "title": f"careers / {service}",
        "tags": ["careers"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "namespace", "type": "query", "datasource": DATASOURCE, "refresh": 2,
             "query": f'label_values(careers_build_info{{job="{service}"}}, namespace)'},
            {"name": "job", "type": "constant", "query": service, "hide": 2},
        ]},
        "panels": laid_out,
    }


def rendered():
    """File name to text, as committed."""
    return {f"{service}.json": json.dumps(dashboard(service), indent=2) + "\n" for service in SERVICES}


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
