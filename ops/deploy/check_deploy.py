#!/usr/bin/env python3
"""Checks the deploy files against the server's documented contract (README.md) and
against each other. Run by ops/deploy/check.sh, which validates syntax and schemas first:

  check_deploy.py compose RESOLVED.yaml   # `docker-compose config` output of compose.yaml
  check_deploy.py helm MANIFEST_DIR...    # rendered charts (helm/render.go)
  check_deploy.py fly fly.toml

From README.md: the configuration table (every COLLAB_* name used must be a row), the
roles COLLAB_ROLES takes, the `collab` subcommands, the operations routes (/healthz,
/readyz, /metrics), and whether a process without the api role listens. Prints nothing
when all is well; each problem is one line on stderr, and the exit status is 1.
"""

import os
import re
import sys
import tomllib
from urllib.parse import urlsplit

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


# ---------------------------------------------------------------- README's contract

def read_readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    settings = {}
    for line in text.splitlines():
        m = re.match(r"^\| `(COLLAB_[A-Z0-9_]+)` \|([^|]*)\|([^|]*)\|", line)
        if m:
            settings[m.group(1)] = {"flag": m.group(2).strip(), "default": m.group(3).strip()}
    roles_row = next((l for l in text.splitlines() if l.startswith("| `COLLAB_ROLES`")), "")
    meaning = roles_row.split("|")[4] if roles_row.count("|") >= 5 else ""
    roles = set(re.findall(r"`([a-z]+)`", meaning))
    commands = set(re.findall(r"^\| `collab ([a-z]+)", text, re.M))
    ops_row = next((l for l in text.splitlines() if "`GET /healthz`" in l), "")
    routes = set(re.findall(r"`GET (/[a-z]+)`", ops_row))
    serve_row = next((l for l in text.splitlines() if l.startswith("| `collab serve`")), "")
    nonapi_listens = bool(re.search(r"without the `api` role still serves", serve_row))
    if not settings or not roles or not commands or not routes:
        problem("README.md", "cannot find the configuration table, the roles, the commands or the /healthz row")
    return settings, roles, commands, routes, nonapi_listens


SETTINGS, ROLES, COMMANDS, ROUTES, NONAPI_LISTENS = read_readme()
ROLES.add("all")
AWS_NAMES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"}
SECRETS = {"COLLAB_DATABASE_URL", "COLLAB_JWT_SECRET", "COLLAB_SMTP_URL", "COLLAB_AUDIT_SIGNING_KEY",
           "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def check_names_in_text(where, text):
    """Every COLLAB_* name in a file is a setting of README's table."""
    for name in sorted(set(re.findall(r"\bCOLLAB_[A-Z0-9_]*[A-Z0-9]\b", text))):
        if name not in SETTINGS:
            problem(where, f"{name} is not in README.md's configuration table")


def check_value(where, key, value):
    """A setting whose README default is a whole number must be one (Helm's float64
    values print 2097152 as 2.097152e+06)."""
    default = SETTINGS.get(key, {}).get("default", "")
    if re.fullmatch(r"`\d+`", default) and not re.fullmatch(r"\d+", str(value)):
        problem(where, f"{key}={value!r} is not a whole number, as its default {default} is")


def check_roles(where, value):
    roles = [r.strip() for r in str(value).split(",") if r.strip()]
    if not roles:
        problem(where, "COLLAB_ROLES is empty")
    for role in roles:
        if role not in ROLES:
            problem(where, f"unknown role {role!r} (README: {', '.join(sorted(ROLES))})")
    return set(roles)


def is_api(roles):
    return "api" in roles or "all" in roles


def check_route(where, path):
    if path not in ROUTES:
        problem(where, f"{path!r} is not one of the server's operations routes ({', '.join(sorted(ROUTES))})")


def listen_port(where, value):
    m = re.fullmatch(r"(?:\[[0-9a-fA-F:]+\]|[^:]+):(\d+)", str(value))
    if not m:
        problem(where, f"COLLAB_LISTEN {value!r} is not host:port")
        return None
    host = str(value).rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", "[::1]"):
        problem(where, f"COLLAB_LISTEN {value!r} listens on loopback only: nothing outside the container reaches it")
    return int(m.group(1))


def check_command(where, args):
    """`collab ARGS` (the image's entrypoint is collab): a documented subcommand and, for
    serve, documented flags."""
    if not args:
        problem(where, "no command")
        return
    if args[0] not in COMMANDS:
        problem(where, f"`collab {args[0]}` is not a command of README's table ({', '.join(sorted(COMMANDS))})")
    flags = {s["flag"].split()[-1].strip("`") for s in SETTINGS.values() if s["flag"]}
    for arg in args[1:]:
        if arg.startswith("--") and arg.split("=")[0] not in flags:
            problem(where, f"`{arg}` is not a flag of README's configuration table")


# ---------------------------------------------------------------- compose

def volumes_of(service):
    """(type, source, target) of each volume, long or short syntax (`docker-compose
    config` writes the short one: SOURCE:TARGET[:MODE])."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v.get("type"), v.get("source"), v.get("target")))
            continue
        parts = str(v).split(":")
        if len(parts) == 1:
            out.append(("volume", None, parts[0]))
        else:
            kind = "bind" if parts[0].startswith(("/", ".", "~")) else "volume"
            out.append((kind, parts[0], parts[1]))
    return out


def published_targets(service):
    targets = set()
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            targets.add(int(p.get("target", 0)))
        else:
            targets.add(int(str(p).split("/")[0].rsplit(":", 1)[-1]))
    return targets


def check_compose(resolved_path):
    source = os.path.join(HERE, "compose.yaml")
    with open(source, encoding="utf-8") as f:
        check_names_in_text("compose.yaml", f.read())
    with open(resolved_path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    services = config.get("services", {})
    where = lambda name: f"compose.yaml: {name}"

    collab = {n: s for n, s in services.items() if s.get("image", "").split(":")[0] == "candlefish/collab"}
    for name, s in collab.items():
        build = s.get("build") or {}
        if os.path.normpath(str(build.get("context", ""))) != ROOT or build.get("dockerfile") != "ops/deploy/Dockerfile":
            problem(where(name), "must build from the repository root with ops/deploy/Dockerfile")
    servers = {}
    for name, s in collab.items():
        env = s.get("environment") or {}
        command = s.get("command") or []
        check_command(where(name), command)
        for key in env:
            check_value(where(name), key, env[key])
            if not (key in SETTINGS or key in AWS_NAMES):
                problem(where(name), f"{key} is neither a COLLAB_* setting of README.md nor an AWS variable")
        if command[:1] != ["serve"]:
            continue
        roles = check_roles(where(name), env.get("COLLAB_ROLES", "all"))
        port = listen_port(where(name), env.get("COLLAB_LISTEN", SETTINGS["COLLAB_LISTEN"]["default"].strip("`")))
        servers[name] = (roles, port, env, s)

    by_role = lambda role: [n for n, (r, *_) in servers.items() if role in r or "all" in r]
    apis = by_role("api")
    if len(apis) < 2:
        problem("compose.yaml", f"expected two API instances, found {apis}")
    for role in sorted(ROLES - {"all"}):
        if not by_role(role):
            problem("compose.yaml", f"no process runs the {role} role")
    search_volumes = {}
    for name in apis:
        roles, port, env, s = servers[name]
        target = env.get("COLLAB_SEARCH_DIR")
        if not target or target == "memory":
            continue
        vols = [v for v in volumes_of(s) if v[2] == target]
        if not vols:
            problem(where(name), f"COLLAB_SEARCH_DIR {target} is not a volume")
            continue
        src = vols[0][1]
        if src in search_volumes:
            problem(where(name), f"shares its search index volume {src} with {search_volumes[src]} (each instance needs its own)")
        search_volumes[src] = name
        if port not in published_targets(s):
            problem(where(name), f"the API port {port} is not published")

    # Dependencies: hosts in URLs are services, credentials agree.
    def service_of(url, what, name):
        host = urlsplit(url).hostname
        if host not in services:
            problem(where(name), f"{what} host {host!r} is not a service")
        return host

    for name, (roles, port, env, s) in servers.items():
        db = env.get("COLLAB_DATABASE_URL", "")
        pg = service_of(db, "COLLAB_DATABASE_URL", name)
        if pg in services:
            password = (services[pg].get("environment") or {}).get("POSTGRES_PASSWORD")
            if urlsplit(db).password != password:
                problem(where(name), "COLLAB_DATABASE_URL's password is not the postgres service's POSTGRES_PASSWORD")
        # Several servers, comma-separated: each must be a service; the first is waited on.
        nats_urls = [u.strip() for u in env.get("COLLAB_NATS_URL", "").split(",")]
        nats = [service_of(u, "COLLAB_NATS_URL", name) for u in nats_urls][0]
        replicas = int(env.get("COLLAB_NATS_REPLICAS", "1"))
        if replicas > len(nats_urls):
            problem(where(name), f"COLLAB_NATS_REPLICAS {replicas} exceeds the {len(nats_urls)} NATS servers listed")
        if "COLLAB_S3_BUCKET" in env:
            s3 = service_of(env.get("COLLAB_S3_ENDPOINT", ""), "COLLAB_S3_ENDPOINT", name)
            if s3 in services:
                menv = services[s3].get("environment") or {}
                if (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) != (menv.get("MINIO_ROOT_USER"), menv.get("MINIO_ROOT_PASSWORD")):
                    problem(where(name), "AWS credentials are not the S3 service's")
            makers = [n for n, x in services.items() if f"local/{env['COLLAB_S3_BUCKET']}" in " ".join(map(str, x.get("command") or []))]
            if not makers:
                problem(where(name), f"nothing creates the bucket {env['COLLAB_S3_BUCKET']!r}")
            for maker in makers:
                cond = (s.get("depends_on") or {}).get(maker, {}).get("condition")
                if cond != "service_completed_successfully":
                    problem(where(name), f"must wait for {maker} to complete (the server checks the bucket at start)")
        if "COLLAB_SMTP_URL" in env:
            service_of(env["COLLAB_SMTP_URL"], "COLLAB_SMTP_URL", name)
        for dep, spec in (s.get("depends_on") or {}).items():
            if spec.get("condition") == "service_healthy" and "healthcheck" not in services.get(dep, {}):
                problem(where(name), f"waits for {dep} to be healthy, which has no health check")
        for dep in (pg, nats):
            if dep in services and (s.get("depends_on") or {}).get(dep, {}).get("condition") != "service_healthy":
                problem(where(name), f"must wait for {dep} to be healthy (serve exits when it cannot connect)")

    # NATS: a cluster of JetStream servers, each with its own volume and name.
    nats = {n: s for n, s in services.items() if s.get("image", "").startswith("nats:")}
    if len(nats) != 3:
        problem("compose.yaml", f"expected 3 NATS servers, found {sorted(nats)}")
    names, volumes = set(), set()
    for name, s in nats.items():
        if not s.get("image", "").endswith("-alpine"):
            problem(where(name), "the health check needs wget: use a nats:*-alpine image")
        args = dict(a.lstrip("-").split("=", 1) if "=" in a else (a.lstrip("-"), True) for a in s.get("command") or [])
        if "jetstream" not in args and "js" not in args:
            problem(where(name), "JetStream is not enabled")
        names.add(args.get("server_name"))
        routes = {urlsplit(r).hostname for r in str(args.get("routes", "")).split(",")}
        if routes != set(nats):
            problem(where(name), f"routes {sorted(routes)} are not the cluster's servers {sorted(nats)}")
        store = args.get("store_dir")
        vols = [v for v in volumes_of(s) if v[2] == store]
        if not vols or vols[0][0] != "volume" or not vols[0][1]:
            problem(where(name), f"store_dir {store} is not a named volume")
        else:
            volumes.add(vols[0][1])
    if len(names) != len(nats) or len(volumes) != len(nats):
        problem("compose.yaml", "each NATS server needs its own server_name and its own volume")

    # Bind mounts exist; Prometheus and Grafana see what they are meant to.
    for name, s in services.items():
        for kind, source, _ in volumes_of(s):
            if kind == "bind" and not os.path.exists(source):
                problem(where(name), f"mounts {source}, which does not exist")
    prom = services.get("prometheus")
    if prom:
        mounts = {t: src for kind, src, t in volumes_of(prom) if kind == "bind"}
        config_file = mounts.get("/etc/prometheus/prometheus.yml")
        if not config_file:
            problem(where("prometheus"), "prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
        else:
            with open(config_file, encoding="utf-8") as f:
                pconf = yaml.safe_load(f)
            for rule in pconf.get("rule_files", []):
                if os.path.join("/etc/prometheus", rule) not in mounts:
                    problem(where("prometheus"), f"rule file {rule} is not mounted beside prometheus.yml")
            jobs = {j["job_name"]: j for j in pconf.get("scrape_configs", [])}
            if "collab" not in jobs:
                problem("prometheus.yml", 'no job "collab" (the alert rules read up{job="collab"})')
            else:
                targets = {t for sc in jobs["collab"].get("static_configs", []) for t in sc.get("targets", [])}
                want = {f"{n}:{port}" for n, (roles, port, *_) in servers.items() if is_api(roles) or NONAPI_LISTENS}
                if targets != want:
                    problem("prometheus.yml", f"scrapes {sorted(targets)}; the collab processes serving /metrics are {sorted(want)}")
                check_route("prometheus.yml", jobs["collab"].get("metrics_path", "/metrics"))
    graf = services.get("grafana")
    if graf:
        mounts = {t: src for kind, src, t in volumes_of(graf) if kind == "bind"}
        dash_dirs = set()
        for target, src in mounts.items():
            if target.startswith("/etc/grafana/provisioning/") and os.path.isdir(src):
                for file in sorted(os.listdir(src)):
                    with open(os.path.join(src, file), encoding="utf-8") as f:
                        doc = yaml.safe_load(f)
                    if doc.get("apiVersion") != 1:
                        problem(f"grafana/provisioning/{os.path.basename(src)}/{file}", "apiVersion must be 1")
                    for ds in doc.get("datasources", []):
                        host = urlsplit(ds.get("url", "")).hostname
                        if ds.get("type") != "prometheus" or host not in services:
                            problem(f"grafana/provisioning/datasources/{file}", f"data source {ds.get('name')} is not the prometheus service")
                    for p in doc.get("providers", []):
                        dash_dirs.add(p.get("options", {}).get("path"))
        dashboards = [t for t in mounts if t.endswith(".json")]
        if not dashboards or any(os.path.dirname(t) not in dash_dirs for t in dashboards):
            problem(where("grafana"), f"the dashboard {dashboards} is not in a provider's path {sorted(map(str, dash_dirs))}")


# ---------------------------------------------------------------- helm

def check_helm(directories):
    for name in ("values.yaml",):
        with open(os.path.join(HERE, "helm", "collab", name), encoding="utf-8") as f:
            check_names_in_text(f"helm/collab/{name}", f.read())
    templates = os.path.join(HERE, "helm", "collab", "templates")
    for name in sorted(os.listdir(templates)):
        with open(os.path.join(templates, name), encoding="utf-8") as f:
            check_names_in_text(f"helm/collab/templates/{name}", f.read())
    with open(os.path.join(HERE, "helm", "collab", "Chart.yaml"), encoding="utf-8") as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        cargo = tomllib.load(f)
    version = cargo.get("workspace", {}).get("package", {}).get("version")
    if chart.get("appVersion") != version:
        problem("helm/collab/Chart.yaml", f"appVersion {chart.get('appVersion')!r} is not the server's version {version!r} (Cargo.toml)")
    for directory in directories:
        check_manifests(directory)


SERVICEMONITOR = {
    "spec": {"selector", "endpoints", "jobLabel", "namespaceSelector", "podTargetLabels", "targetLabels", "sampleLimit"},
    "endpoint": {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "relabelings",
                 "metricRelabelings", "honorLabels", "honorTimestamps", "params", "tlsConfig", "bearerTokenSecret"},
    "relabeling": {"action", "sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement"},
    "actions": {"replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase",
                "uppercase", "keepequal", "dropequal"},
}
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


def check_servicemonitor(where, obj):
    """The ServiceMonitor fields this chart uses, against the Prometheus Operator's CRD
    (monitoring.coreos.com/v1), by hand: kubernetes-validate has no schema for CRDs."""
    spec = obj.get("spec") or {}
    for key in spec:
        if key not in SERVICEMONITOR["spec"]:
            problem(where, f"spec.{key} is not a ServiceMonitor field")
    if not isinstance((spec.get("selector") or {}).get("matchLabels"), dict):
        problem(where, "spec.selector.matchLabels is required")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problem(where, "spec.endpoints must be a non-empty list")
        return
    for i, ep in enumerate(endpoints):
        for key in ep:
            if key not in SERVICEMONITOR["endpoint"]:
                problem(where, f"spec.endpoints[{i}].{key} is not an Endpoint field")
        for key in ("interval", "scrapeTimeout"):
            if key in ep and not DURATION.match(str(ep[key])):
                problem(where, f"spec.endpoints[{i}].{key} {ep[key]!r} is not a Prometheus duration")
        for j, r in enumerate(ep.get("relabelings") or []):
            for key in r:
                if key not in SERVICEMONITOR["relabeling"]:
                    problem(where, f"spec.endpoints[{i}].relabelings[{j}].{key} is not a RelabelConfig field")
            if r.get("action", "replace") not in SERVICEMONITOR["actions"]:
                problem(where, f"spec.endpoints[{i}].relabelings[{j}].action {r.get('action')!r} is unknown")
            if not isinstance(r.get("replacement", ""), str):
                problem(where, f"spec.endpoints[{i}].relabelings[{j}].replacement must be a string")


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_manifests(directory):
    objs = []
    for file in sorted(os.listdir(directory)):
        with open(os.path.join(directory, file), encoding="utf-8") as f:
            text = f.read()
        check_names_in_text(f"{directory}/{file}", text)
        objs.append((f"{os.path.basename(directory)}/{file}", yaml.safe_load(text)))
    kinds = lambda kind: [(w, o) for w, o in objs if o["kind"] == kind]
    configmaps = {o["metadata"]["name"]: o for _, o in kinds("ConfigMap")}
    deployments = {o["metadata"]["name"]: (w, o) for w, o in kinds("Deployment")}
    services = {o["metadata"]["name"]: (w, o) for w, o in kinds("Service")}
    if not deployments:
        problem(directory, "no Deployment")
    for name, cm in configmaps.items():
        for key, value in (cm.get("data") or {}).items():
            check_value(f"{directory} ConfigMap {name}", key, value)
            if key not in SETTINGS and key not in AWS_NAMES:
                problem(directory, f"ConfigMap {name}: {key} is not a setting")
            if key in SECRETS:
                problem(directory, f"ConfigMap {name}: {key} is a secret; it belongs in the existing Secret")

    def check_pod(where, pod, is_job=False):
        containers = pod.get("containers") or []
        for c in containers:
            args = c.get("args") or []
            check_command(where, args)
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            for ef in c.get("envFrom") or []:
                ref = (ef.get("configMapRef") or {}).get("name")
                if ref is not None and ref not in configmaps:
                    problem(where, f"envFrom names ConfigMap {ref}, which the chart does not make")
                if ref in configmaps:
                    env = {**(configmaps[ref].get("data") or {}), **env}
            for key in env:
                check_value(where, key, env[key])
                if key not in SETTINGS and key not in AWS_NAMES:
                    problem(where, f"{key} is not a setting")
            if is_job:
                continue
            roles = check_roles(where, env.get("COLLAB_ROLES", "all"))
            port = listen_port(where, env.get("COLLAB_LISTEN", SETTINGS["COLLAB_LISTEN"]["default"].strip("`")))
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            listens = is_api(roles) or NONAPI_LISTENS
            if listens and ports.get("http") != port:
                problem(where, f"container port http {ports.get('http')} is not COLLAB_LISTEN's port {port}")
            probes = {k: c.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
            for kind, probe in probes.items():
                if probe is None:
                    continue
                if not listens:
                    problem(where, f"{kind}: README says a process without the api role serves no HTTP")
                get = probe.get("httpGet") or {}
                check_route(f"{where} {kind}", get.get("path"))
                if get.get("port") not in ports and get.get("port") != port:
                    problem(where, f"{kind} port {get.get('port')!r} is not a container port")
            if listens:
                want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
                for kind, path in want.items():
                    got = ((probes.get(kind) or {}).get("httpGet") or {}).get("path")
                    if got != path:
                        problem(where, f"{kind} is on {got!r}, not {path}")
            if is_api(roles):
                search = env.get("COLLAB_SEARCH_DIR", SETTINGS["COLLAB_SEARCH_DIR"]["default"].strip("`"))
                mounts = {m["mountPath"] for m in c.get("volumeMounts") or []}
                if search != "memory" and search not in mounts:
                    problem(where, f"COLLAB_SEARCH_DIR {search} is not a volume (the root filesystem may be read-only)")

    for name, (where, d) in deployments.items():
        pod_labels = d["spec"]["template"]["metadata"].get("labels") or {}
        if not matches(d["spec"]["selector"].get("matchLabels"), pod_labels):
            problem(where, "the selector does not match the pod's labels")
        check_pod(where, d["spec"]["template"]["spec"])
    for where, job in kinds("Job"):
        hooks = (job["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
        if not {"pre-install", "pre-upgrade"} <= set(hooks.split(",")):
            problem(where, "the migration job must be a pre-install,pre-upgrade hook")
        pod = job["spec"]["template"]["spec"]
        if any((ef.get("configMapRef") or {}) for c in pod.get("containers", []) for ef in c.get("envFrom") or []):
            problem(where, "a pre-install hook runs before the chart's ConfigMap exists: do not read it")
        check_pod(where, pod, is_job=True)
        if [c.get("args") for c in pod.get("containers", [])] != [["migrate"]]:
            problem(where, "the job must run `collab migrate`")
    for name, (where, svc) in services.items():
        sel = svc["spec"].get("selector") or {}
        targets = [(w, d) for w, d in deployments.values() if matches(sel, d["spec"]["template"]["metadata"].get("labels") or {})]
        if len(targets) != 1:
            problem(where, f"selects {len(targets)} Deployments, not one")
            continue
        container_ports = {p.get("name") for c in targets[0][1]["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []}
        for p in svc["spec"].get("ports") or []:
            if p.get("targetPort") not in container_ports:
                problem(where, f"targetPort {p.get('targetPort')!r} is not a container port of {targets[0][1]['metadata']['name']}")
    for where, hpa in kinds("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            problem(where, f"scales {ref.get('kind')} {ref.get('name')}, which the chart does not make")
        elif "replicas" in deployments[ref["name"]][1]["spec"]:
            problem(where, f"Deployment {ref['name']} sets replicas, which would fight the autoscaler")
        if hpa["spec"]["minReplicas"] > hpa["spec"]["maxReplicas"]:
            problem(where, "minReplicas is above maxReplicas")
    for where, pdb in kinds("PodDisruptionBudget"):
        sel = pdb["spec"]["selector"].get("matchLabels")
        if not any(matches(sel, d["spec"]["template"]["metadata"].get("labels") or {}) for _, d in deployments.values()):
            problem(where, "selects no Deployment's pods")
    for where, sm in kinds("ServiceMonitor"):
        check_servicemonitor(where, sm)
        sel = (sm["spec"].get("selector") or {}).get("matchLabels")
        svcs = [s for _, s in services.values() if matches(sel, s["metadata"].get("labels") or {})]
        if not svcs:
            problem(where, "selects no Service")
        for ep in sm["spec"].get("endpoints") or []:
            check_route(where, ep.get("path", "/metrics"))
            for s in svcs:
                if ep.get("port") not in {p.get("name") for p in s["spec"].get("ports") or []}:
                    problem(where, f"port {ep.get('port')!r} is not a port of Service {s['metadata']['name']}")
            jobs = [r.get("replacement") for r in ep.get("relabelings") or [] if r.get("targetLabel") == "job"]
            if jobs != ["collab"]:
                problem(where, 'the alert rules read up{job="collab"}: relabel job to "collab"')
            if not NONAPI_LISTENS:
                for s in svcs:
                    if s["metadata"].get("labels", {}).get("app.kubernetes.io/component") not in ("api",):
                        problem(where, "README says processes without the api role serve no /metrics")


# ---------------------------------------------------------------- fly

def check_fly(path):
    with open(path, "rb") as f:
        raw = f.read()
    check_names_in_text("fly.toml", raw.decode("utf-8"))
    try:
        fly = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        problem("fly.toml", f"not TOML: {e}")
        return
    for key in ("app", "primary_region", "processes", "build", "env"):
        if key not in fly:
            problem("fly.toml", f"no {key}")
    dockerfile = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), fly.get("build", {}).get("dockerfile", "Dockerfile")))
    if dockerfile != os.path.join(HERE, "Dockerfile"):
        problem("fly.toml", f"[build] dockerfile is {dockerfile}, not ops/deploy/Dockerfile (it is read relative to fly.toml)")
    env = fly.get("env", {})
    for key, value in env.items():
        check_value("fly.toml [env]", key, value)
        if key not in SETTINGS and key not in AWS_NAMES:
            problem("fly.toml", f"[env] {key} is not a setting")
        if key in SECRETS:
            problem("fly.toml", f"[env] {key} is a secret: `fly secrets set` it")
        if not isinstance(value, str):
            problem("fly.toml", f"[env] {key} must be a string")
    port = listen_port("fly.toml [env]", env.get("COLLAB_LISTEN", SETTINGS["COLLAB_LISTEN"]["default"].strip("`")))
    processes = fly.get("processes", {})
    api_processes = set()
    for name, command in processes.items():
        args = command.split()
        check_command(f"fly.toml [processes] {name}", args)
        roles = None
        for i, a in enumerate(args):
            if a == "--roles" and i + 1 < len(args):
                roles = args[i + 1]
            elif a.startswith("--roles="):
                roles = a.split("=", 1)[1]
        roles = check_roles(f"fly.toml [processes] {name}", roles if roles is not None else env.get("COLLAB_ROLES", "all"))
        if is_api(roles):
            api_processes.add(name)
    release = fly.get("deploy", {}).get("release_command")
    if release:
        check_command("fly.toml [deploy] release_command", release.split())

    def known(where, names):
        for n in names or []:
            if n not in processes:
                problem(f"fly.toml {where}", f"process {n!r} is not in [processes]")

    http_service = fly.get("http_service")
    services = fly.get("services", [])
    if isinstance(services, dict):
        services = [services]
    served = []
    if http_service:
        served.append(("[http_service]", http_service, http_service.get("checks", [])))
    for i, s in enumerate(services):
        served.append((f"[[services]] {i}", s, s.get("http_checks", [])))
    if not served:
        problem("fly.toml", "no [http_service] or [[services]] for the API")
    for where, s, checks in served:
        names = s.get("processes") or ["app"]
        known(where, names)
        for n in names:
            if n in processes and n not in api_processes:
                problem(f"fly.toml {where}", f"routes traffic to {n!r}, which has no api role")
        if s.get("internal_port") != port:
            problem(f"fly.toml {where}", f"internal_port {s.get('internal_port')} is not COLLAB_LISTEN's port {port}")
        if not checks:
            problem(f"fly.toml {where}", "no HTTP check")
        for c in checks:
            check_route(f"fly.toml {where} check", c.get("path"))
            if c.get("path") != "/readyz":
                problem(f"fly.toml {where}", "route traffic on readiness: check /readyz")
    for name, c in (fly.get("checks") or {}).items():
        known(f"[checks.{name}]", c.get("processes"))
        if c.get("type") == "http":
            check_route(f"fly.toml [checks.{name}]", c.get("path"))
            if c.get("port") != port:
                problem(f"fly.toml [checks.{name}]", f"port {c.get('port')} is not COLLAB_LISTEN's port {port}")
            for n in c.get("processes") or list(processes):
                if n not in api_processes and not NONAPI_LISTENS:
                    problem(f"fly.toml [checks.{name}]", f"README says {n!r} (no api role) serves no HTTP")
    metrics = fly.get("metrics")
    for m in (metrics if isinstance(metrics, list) else [metrics] if metrics else []):
        known("[metrics]", m.get("processes"))
        check_route("fly.toml [metrics]", m.get("path"))
        if m.get("port") != port:
            problem("fly.toml [metrics]", f"port {m.get('port')} is not COLLAB_LISTEN's port {port}")
        for n in m.get("processes") or list(processes):
            if n not in api_processes and not NONAPI_LISTENS:
                problem("fly.toml [metrics]", f"README says {n!r} (no api role) serves no /metrics")
    sizes = {"shared-cpu-1x", "shared-cpu-2x", "shared-cpu-4x", "shared-cpu-8x", "performance-1x",
             "performance-2x", "performance-4x", "performance-8x", "performance-16x"}
    vm_processes = set()
    for i, vm in enumerate(fly.get("vm", [])):
        known(f"[[vm]] {i}", vm.get("processes"))
        vm_processes.update(vm.get("processes") or processes)
        if "size" in vm and vm["size"] not in sizes:
            problem(f"fly.toml [[vm]] {i}", f"unknown size {vm['size']!r}")
    for n in processes:
        if fly.get("vm") and n not in vm_processes:
            problem("fly.toml", f"process {n!r} has no [[vm]]")
    for key in ("mounts",):
        for m in (fly.get(key) if isinstance(fly.get(key), list) else [fly[key]] if key in fly else []):
            known(f"[{key}]", m.get("processes"))
    if not {"api"} <= api_processes:
        problem("fly.toml", "no `api` process with the api role")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("compose", "helm", "fly"):
        sys.exit(__doc__)
    {"compose": lambda: check_compose(sys.argv[2]),
     "helm": lambda: check_helm(sys.argv[2:]),
     "fly": lambda: check_fly(sys.argv[2])}[sys.argv[1]]()
    for p in problems:
        print(f"deploy check: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
