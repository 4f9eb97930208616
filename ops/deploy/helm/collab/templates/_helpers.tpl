{{/* The chart's name, or nameOverride. */}}
{{- define "collab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name for every object, at most 63 characters. */}}
{{- define "collab.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "collab.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "collab.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "collab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "collab.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A role group's name: the fullname and the group, e.g. "prod-collab-api". */}}
{{- define "collab.groupName" -}}
{{- printf "%s-%s" (include "collab.fullname" .root) .group.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A role group's selector labels (called with dict "root" $ "group" .). */}}
{{- define "collab.groupSelectorLabels" -}}
{{ include "collab.selectorLabels" .root }}
app.kubernetes.io/component: {{ .group.name }}
{{- end -}}

{{/* "true" when the group's roles include the HTTP API (`api` or `all`), else "". Every
process listens on COLLAB_LISTEN; without the api role it serves /healthz, /readyz and
/metrics only. */}}
{{- define "collab.isApi" -}}
{{- if regexMatch "(^|,)\\s*(api|all)\\s*(,|$)" .roles -}}true{{- end -}}
{{- end -}}

{{- define "collab.image" -}}
{{- printf "%s:%s" (required "image.repository is required" .Values.image.repository) (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "collab.secretName" -}}
{{- required "existingSecret: name the Secret holding COLLAB_DATABASE_URL and the JWT settings" .Values.existingSecret -}}
{{- end -}}

{{/* An environment variable's value, quoted. Helm reads numbers in values as float64, so
an unquoted 2097152 would print as 2.097152e+06: whole numbers are written as integers. */}}
{{- define "collab.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end -}}
