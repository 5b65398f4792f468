{{/*
TOML from a table, with integers kept integers (Helm reads every YAML number as a float, and
the processes refuse 1.0 where they expect 1). Call with (dict "table" $map "prefix" "").
Scalars and arrays first, then sub-tables as [prefix.key] (TOML puts every key after a table
header into that table); null values are left out.
*/}}
{{- define "spanway.toml" -}}
{{- $table := .table -}}
{{- $prefix := .prefix -}}
{{- range $key := keys $table | sortAlpha }}
{{- $v := get $table $key }}
{{- if and (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) }}
{{ include "spanway.tomlKey" $key }} = {{ include "spanway.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $key := keys $table | sortAlpha }}
{{- $v := get $table $key }}
{{- if kindIs "map" $v }}
{{- $name := ternary (include "spanway.tomlKey" $key) (printf "%s.%s" $prefix (include "spanway.tomlKey" $key)) (eq $prefix "") }}

[{{ $name }}]
{{- include "spanway.toml" (dict "table" $v "prefix" $name) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "spanway.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "spanway.tomlValue" -}}
{{- if kindIs "slice" . -}}
[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "spanway.tomlValue" $e }}{{ end }}]
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (floor .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if kindIs "string" . -}}
{{ toJson . }}
{{- else -}}
{{ . }}
{{- end -}}
{{- end -}}
