{{- define "tprobe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tprobe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tprobe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tprobe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tprobe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tprobe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tprobe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Metrics listen on the node's loopback (or on every address, loopback included). */}}
{{- define "tprobe.loopbackProbes" -}}
{{- if and .Values.hostNetwork (has .Values.metrics.listen (list "127.0.0.1" "0.0.0.0" "localhost")) }}true{{ end }}
{{- end }}

{{/* Whether /metrics is reachable from outside the node. */}}
{{- define "tprobe.metricsExposed" -}}
{{- if not (has .Values.metrics.listen (list "127.0.0.1" "localhost" "::1")) }}true{{ end }}
{{- end }}

{{- define "tprobe.httpProbe" -}}
httpGet:
  path: /healthz
  port: {{ .root.Values.metrics.port }}
  {{- if include "tprobe.loopbackProbes" .root }}
  host: 127.0.0.1
  {{- end }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}
