#!/usr/bin/env bash
# Checks the deploy files as far as this machine allows (no container engine, no helm, no
# cluster, no Fly account): ops/deploy/README.md says what each check covers and what it
# cannot. On a bare Debian machine it installs what it needs first (apt-get, with sudo
# when not root; a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/collab/). Quiet when all
# is well; on a failure it says which check failed and why, and exits 1.
#
#  - Prometheus: `promtool check rules/config`, the alert rules' unit tests, and every
#    metric named by the rules, the dashboard and prometheus.yml is one the code records.
#  - compose.yaml: `docker-compose config` (Debian's docker-compose 1.29, schema and
#    interpolation), then check_deploy.py on the resolved file.
#  - helm/collab: rendered by helm/render.go (as `helm template` would) with the default
#    values and with other values, each validated by kubernetes-validate (strict) and
#    check_deploy.py; values that `required` must refuse are refused.
#  - fly.toml: parsed (tomllib) and checked by check_deploy.py.
set -euo pipefail
cd "$(dirname "$0")"
deploy="$PWD"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/collab"
# Kubernetes versions the chart is validated against: the oldest its Chart.yaml allows and
# a recent one.
kube_versions="1.25.0 1.33.0"
say() { echo "deploy check: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------
sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/Masterminds/sprig ] || need+=(golang-github-masterminds-sprig-dev)
[ -d /usr/share/gocode/src/gopkg.in/yaml.v2 ] || need+=(golang-gopkg-yaml.v2-dev)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]} (Debian packages)"
  $sudo_ apt-get update -qq </dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" \
    </dev/null >/dev/null || die "apt-get install ${need[*]} failed"
fi
venv="$cache/deploy-venv"
pins="kubernetes-validate==1.37.0 PyYAML==6.0.4"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  say "installing $pins into $venv (PyPI)"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "cannot make a virtualenv in $venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check --no-input $pins </dev/null >/dev/null \
    || die "pip install $pins failed"
  echo "$pins" >"$venv/.pins"
fi
python="$venv/bin/python"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- Prometheus and Grafana --------------------------------------------------------------
promtool check rules prometheus/alerts.yml >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "promtool check rules prometheus/alerts.yml"; }
promtool test rules prometheus/alerts_test.yml >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "promtool test rules prometheus/alerts_test.yml"; }
promtool check config prometheus/prometheus.yml >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "promtool check config prometheus/prometheus.yml"; }
python3 -m json.tool grafana/collab.json >/dev/null || die "grafana/collab.json is not JSON"
# Every collab_* metric named here is one the code records (histograms: without the
# _bucket/_count/_sum suffixes Prometheus adds).
status=0
for metric in $(grep -ohE 'collab_[a-z_]+' prometheus/alerts.yml prometheus/prometheus.yml grafana/collab.json | sed -E 's/_(bucket|count|sum)$//' | sort -u); do
  if ! grep -rqE "\"$metric\"" ../../api ../../projections ../../commands --include='*.rs'; then
    say "$metric is not a metric the server exports"
    status=1
  fi
done
[ "$status" = 0 ] || die "metric names (above)"

# --- compose.yaml ------------------------------------------------------------------------
# A clean environment: the defaults written in the file, not this shell's variables.
compose() { env -i PATH="$PATH" HOME="$tmp" docker-compose --project-directory "$deploy" -f "$deploy/compose.yaml" "$@"; }
compose config -q 2>"$tmp/out" || { cat "$tmp/out" >&2; die "docker-compose rejects compose.yaml"; }
compose config >"$tmp/compose.yaml" 2>"$tmp/out" || { cat "$tmp/out" >&2; die "docker-compose config"; }
"$python" check_deploy.py compose "$tmp/compose.yaml" || die "compose.yaml (above)"

# --- Helm chart --------------------------------------------------------------------------
gofmt_out="$(GOFLAGS= gofmt -l helm/render.go)" || die "gofmt helm/render.go"
[ -z "$gofmt_out" ] || die "helm/render.go is not gofmt-formatted"
(cd helm && env GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="$cache/go-build" \
  go build -o "$tmp/render" render.go) 2>"$tmp/out" || { cat "$tmp/out" >&2; die "cannot build helm/render.go"; }
render() { # render NAME [values files...]: the chart as `helm template` would, into $tmp/NAME
  local name="$1"; shift
  local args=()
  for f in "$@"; do args+=(-f "$f"); done
  "$tmp/render" -chart helm/collab -name "$name" -namespace collab -out "$tmp/$name" "${args[@]}" \
    >"$tmp/$name.list" 2>"$tmp/out" || { cat "$tmp/out" >&2; die "rendering the chart ($name)"; }
}
# Values that exercise the other branches: ServiceMonitor on, 3 API replicas without the
# autoscaler, no migration job, a fullname override, an image tag, extra pod settings; and
# one process with every role (`all`).
"$python" - "$tmp" <<'EOF' || die "cannot write the test values"
import copy, sys, yaml
with open("helm/collab/values.yaml") as f:
    values = yaml.safe_load(f)
groups = copy.deepcopy(values["roleGroups"])
api = next(g for g in groups if g["name"] == "api")
api["replicas"] = 3
api["autoscaling"]["enabled"] = False
api["env"] = {"COLLAB_READ_WAIT_MS": "2000"}
custom = {
    "fullnameOverride": "collab-staging",
    "image": {"tag": "1.2.3"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
    "migrations": {"enabled": False},
    "roleGroups": groups,
    "config": {"COLLAB_SEARCH_DIR": "/data/search", "COLLAB_MAX_BODY_BYTES": 2097152},
    "imagePullSecrets": [{"name": "registry"}],
    "podAnnotations": {"example.com/team": "collab"},
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "collab", "effect": "NoSchedule"}],
}
single = {
    "serviceMonitor": {"enabled": True},
    "roleGroups": [dict(copy.deepcopy(api), name="all", roles="all", replicas=1)],
}
broken = {"config": {"COLLAB_S3_BUCKET": ""}}
for name, doc in (("custom", custom), ("single", single), ("no-bucket", broken)):
    with open(f"{sys.argv[1]}/{name}.values.yaml", "w") as f:
        yaml.safe_dump(doc, f)
EOF
render default
render custom "$tmp/custom.values.yaml"
render single "$tmp/single.values.yaml"
grep -q '^ServiceMonitor/' "$tmp/custom.list" || die "serviceMonitor.enabled rendered no ServiceMonitor"
grep -q '^HorizontalPodAutoscaler/' "$tmp/custom.list" && die "autoscaling.enabled=false still rendered a HorizontalPodAutoscaler"
grep -q '^Job/' "$tmp/custom.list" && die "migrations.enabled=false still rendered the migration job"
if "$tmp/render" -chart helm/collab -out "$tmp/no-bucket" -f "$tmp/no-bucket.values.yaml" >/dev/null 2>"$tmp/out" \
  || ! grep -q 'COLLAB_S3_BUCKET is required' "$tmp/out"; then
  cat "$tmp/out" >&2
  die "the chart should refuse an empty config.COLLAB_S3_BUCKET"
fi
for variant in default custom single; do
  # kubernetes-validate has Kubernetes' own schemas only; check_deploy.py checks the
  # ServiceMonitor (a Prometheus Operator CRD).
  files=()
  while IFS=$'\t' read -r kind file; do
    case "$kind" in ServiceMonitor/*) ;; *) files+=("$tmp/$variant/$file") ;; esac
  done <"$tmp/$variant.list"
  for version in $kube_versions; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${files[@]}" >"$tmp/out" 2>&1 \
      || { cat "$tmp/out" >&2; die "the chart rendered with the $variant values is not valid Kubernetes $version"; }
  done
done
"$python" check_deploy.py helm "$tmp/default" "$tmp/custom" "$tmp/single" || die "the Helm chart (above)"

# --- fly.toml ----------------------------------------------------------------------------
"$python" check_deploy.py fly fly.toml || die "fly.toml (above)"

say "ok: alert rules and prometheus.yml (promtool), compose.yaml (docker-compose config), the Helm chart (3 renderings; Kubernetes ${kube_versions// /, }), fly.toml"
