{{/* Names and labels. */}}
{{- define "spanway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spanway.fullname" -}}
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

{{- define "spanway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spanway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "spanway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "spanway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The three workloads: values key, component label, binary, config file and ops port. */}}
{{- define "spanway.components" -}}
collector:
  binary: spanway-collector
  file: collector.toml
  opsPort: 14269
ingester:
  binary: spanway-ingester
  file: ingester.toml
  opsPort: 14270
analytics:
  binary: spanway-streaming-analytics
  file: analytics.toml
  opsPort: 14271
{{- end -}}

{{/* Call with (dict "root" $ "component" "collector"). */}}
{{- define "spanway.componentName" -}}
{{- printf "%s-%s" (include "spanway.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spanway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spanway.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "spanway.componentLabels" -}}
{{ include "spanway.labels" .root }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: spanway
{{- end -}}

{{- define "spanway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
A Kubernetes memory quantity in bytes, or 0 when it has a form this does not read
(the budget checks are then skipped rather than guessed).
*/}}
{{- define "spanway.bytes" -}}
{{- $q := toString . -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $out := 0 -}}
{{- if regexMatch "^[0-9]+$" $q -}}
{{- $out = int64 $q -}}
{{- else if regexMatch "^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)$" $q -}}
{{- $num := regexFind "^[0-9]+" $q -}}
{{- $unit := trimPrefix $num $q -}}
{{- $out = mul (int64 $num) (get $units $unit) -}}
{{- end -}}
{{- $out -}}
{{- end -}}
