{{/*
Where each mounted Secret lands. The config points at these paths; the Secret key names only
appear in the volume items, so a Secret with other key names (ECK's `elastic`) needs no other
change. Call with (dict "root" $ "component" "ingester"); gives a YAML list of
{volume, secret, dir, items: [{key, path}]}.
*/}}
{{- define "spanway.secretMounts" -}}
{{- $v := .root.Values -}}
{{- $k := $v.kafka -}}
{{- $mounts := list -}}
{{- if $k.tls.caSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "kafka-ca" "secret" $k.tls.caSecret.name "items" (list (dict "key" $k.tls.caSecret.key "path" "ca.crt"))) -}}
{{- end -}}
{{- if $k.tls.clientCertSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "kafka-client" "secret" $k.tls.clientCertSecret.name "items" (list (dict "key" $k.tls.clientCertSecret.certKey "path" "tls.crt") (dict "key" $k.tls.clientCertSecret.keyKey "path" "tls.key"))) -}}
{{- end -}}
{{- if $k.sasl.passwordSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "kafka-sasl" "secret" $k.sasl.passwordSecret.name "items" (list (dict "key" $k.sasl.passwordSecret.key "path" "password"))) -}}
{{- end -}}
{{- if eq .component "collector" -}}
{{- $c := $v.collector -}}
{{- if $c.tls.secretName -}}
{{- $items := list (dict "key" $c.tls.certKey "path" "tls.crt") (dict "key" $c.tls.keyKey "path" "tls.key") -}}
{{- if $c.tls.clientCaKey -}}
{{- $items = append $items (dict "key" $c.tls.clientCaKey "path" "ca.crt") -}}
{{- end -}}
{{- $mounts = append $mounts (dict "volume" "receiver-tls" "secret" $c.tls.secretName "items" $items) -}}
{{- end -}}
{{- if $c.auth.bearerTokensSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "auth-tokens" "secret" $c.auth.bearerTokensSecret.name "items" (list (dict "key" $c.auth.bearerTokensSecret.key "path" "tokens"))) -}}
{{- end -}}
{{- if $c.auth.htpasswdSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "auth-htpasswd" "secret" $c.auth.htpasswdSecret.name "items" (list (dict "key" $c.auth.htpasswdSecret.key "path" "htpasswd"))) -}}
{{- end -}}
{{- else -}}
{{- $e := $v.elasticsearch -}}
{{- if $e.auth.passwordSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "es-password" "secret" $e.auth.passwordSecret.name "items" (list (dict "key" $e.auth.passwordSecret.key "path" "password"))) -}}
{{- end -}}
{{- if $e.auth.apiKeySecret.name -}}
{{- $mounts = append $mounts (dict "volume" "es-api-key" "secret" $e.auth.apiKeySecret.name "items" (list (dict "key" $e.auth.apiKeySecret.key "path" "api-key"))) -}}
{{- end -}}
{{- if $e.auth.bearerTokenSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "es-token" "secret" $e.auth.bearerTokenSecret.name "items" (list (dict "key" $e.auth.bearerTokenSecret.key "path" "token"))) -}}
{{- end -}}
{{- if $e.tls.caSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "es-ca" "secret" $e.tls.caSecret.name "items" (list (dict "key" $e.tls.caSecret.key "path" "ca.crt"))) -}}
{{- end -}}
{{- if $e.tls.clientCertSecret.name -}}
{{- $mounts = append $mounts (dict "volume" "es-client" "secret" $e.tls.clientCertSecret.name "items" (list (dict "key" $e.tls.clientCertSecret.certKey "path" "tls.crt") (dict "key" $e.tls.clientCertSecret.keyKey "path" "tls.key"))) -}}
{{- end -}}
{{- end -}}
{{- toYaml $mounts -}}
{{- end -}}

{{- define "spanway.secretDir" -}}/etc/spanway/secrets/{{ . }}{{- end -}}

{{/* The [kafka] table shared by the three processes (without the per-process keys). */}}
{{- define "spanway.kafkaConfig" -}}
{{- $k := .Values.kafka -}}
{{- $out := dict "brokers" $k.brokers -}}
{{- if $k.tls.enabled -}}
{{- $tls := dict "enabled" true "verify_hostname" $k.tls.verifyHostname -}}
{{- if $k.tls.caSecret.name -}}
{{- $_ := set $tls "ca_file" (printf "%s/ca.crt" (include "spanway.secretDir" "kafka-ca")) -}}
{{- end -}}
{{- if $k.tls.clientCertSecret.name -}}
{{- $_ := set $tls "cert_file" (printf "%s/tls.crt" (include "spanway.secretDir" "kafka-client")) -}}
{{- $_ := set $tls "key_file" (printf "%s/tls.key" (include "spanway.secretDir" "kafka-client")) -}}
{{- end -}}
{{- $_ := set $out "tls" $tls -}}
{{- end -}}
{{- if $k.sasl.mechanism -}}
{{- $sasl := dict "mechanism" $k.sasl.mechanism "username" $k.sasl.username -}}
{{- if $k.sasl.passwordSecret.name -}}
{{- $_ := set $sasl "password_file" (printf "%s/password" (include "spanway.secretDir" "kafka-sasl")) -}}
{{- end -}}
{{- $_ := set $out "sasl" $sasl -}}
{{- end -}}
{{- if $k.properties -}}
{{- $_ := set $out "properties" $k.properties -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The [elasticsearch] connection keys shared by the ingester and analytics. */}}
{{- define "spanway.elasticsearchConfig" -}}
{{- $e := .Values.elasticsearch -}}
{{- $out := dict "urls" $e.urls "index_prefix" $e.indexPrefix "compression" $e.compression -}}
{{- if not (kindIs "invalid" $e.compressionLevel) -}}
{{- $_ := set $out "compression_level" (int $e.compressionLevel) -}}
{{- end -}}
{{- if $e.auth.username -}}
{{- $_ := set $out "username" $e.auth.username -}}
{{- end -}}
{{- if $e.auth.passwordSecret.name -}}
{{- $_ := set $out "password_file" (printf "%s/password" (include "spanway.secretDir" "es-password")) -}}
{{- end -}}
{{- if $e.auth.apiKeySecret.name -}}
{{- $_ := set $out "api_key_file" (printf "%s/api-key" (include "spanway.secretDir" "es-api-key")) -}}
{{- end -}}
{{- if $e.auth.bearerTokenSecret.name -}}
{{- $_ := set $out "bearer_token_file" (printf "%s/token" (include "spanway.secretDir" "es-token")) -}}
{{- end -}}
{{- $tls := dict -}}
{{- if $e.tls.caSecret.name -}}
{{- $_ := set $tls "ca_file" (printf "%s/ca.crt" (include "spanway.secretDir" "es-ca")) -}}
{{- end -}}
{{- if $e.tls.clientCertSecret.name -}}
{{- $_ := set $tls "cert_file" (printf "%s/tls.crt" (include "spanway.secretDir" "es-client")) -}}
{{- $_ := set $tls "key_file" (printf "%s/tls.key" (include "spanway.secretDir" "es-client")) -}}
{{- end -}}
{{- if $e.tls.insecureSkipVerify -}}
{{- $_ := set $tls "insecure_skip_verify" true -}}
{{- end -}}
{{- if $tls -}}
{{- $_ := set $out "tls" $tls -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The whole configuration of one process, as a table. Call with (dict "root" $ "component" …). */}}
{{- define "spanway.config" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $meta := get (include "spanway.components" $root | fromYaml) .component -}}
{{- $kafka := include "spanway.kafkaConfig" $root | fromYaml -}}
{{- $cfg := dict "log" (dict "level" $v.log.level "json" $v.log.json) "ops" (dict "listen" (printf "0.0.0.0:%d" (int $meta.opsPort))) -}}
{{- if eq .component "collector" -}}
{{- $c := $v.collector -}}
{{- $r := $c.receivers -}}
{{- $_ := set $kafka "topic" $v.kafka.topic -}}
{{- $_ := set $kafka "encoding" $v.kafka.encoding -}}
{{- $_ := set $kafka "max_bytes_in_flight" (int64 $c.maxBytesInFlight) -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- $tls := dict -}}
{{- if $c.tls.secretName -}}
{{- $dir := include "spanway.secretDir" "receiver-tls" -}}
{{- $tls = dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir) -}}
{{- if $c.tls.clientCaKey -}}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" $dir) -}}
{{- end -}}
{{- end -}}
{{- range $section, $key := dict "otlp_grpc" "otlpGrpc" "otlp_http" "otlpHttp" "jaeger_grpc" "jaegerGrpc" "jaeger_thrift_http" "jaegerThrift" "zipkin" "zipkin" "sampling" "sampling" -}}
{{- $recv := get $r $key -}}
{{- $s := dict "enabled" $recv.enabled -}}
{{- if $recv.enabled -}}
{{- $_ := set $s (ternary "http_listen" "listen" (eq $section "sampling")) (printf "0.0.0.0:%d" (int $recv.port)) -}}
{{- if $tls -}}
{{- $_ := set $s "tls" (deepCopy $tls) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg $section $s -}}
{{- end -}}
{{- if and $r.sampling.enabled $c.samplingStrategies -}}
{{- $_ := set $cfg.sampling "strategies_file" "/etc/spanway/sampling-strategies.json" -}}
{{- end -}}
{{- $auth := dict -}}
{{- if $c.auth.bearerTokensSecret.name -}}
{{- $_ := set $auth "bearer_tokens_file" (printf "%s/tokens" (include "spanway.secretDir" "auth-tokens")) -}}
{{- end -}}
{{- if $c.auth.htpasswdSecret.name -}}
{{- $_ := set $auth "htpasswd_file" (printf "%s/htpasswd" (include "spanway.secretDir" "auth-htpasswd")) -}}
{{- end -}}
{{- if $auth -}}
{{- $_ := set $cfg "auth" $auth -}}
{{- end -}}
{{- else -}}
{{- $w := get $v .component -}}
{{- $_ := set $kafka "topics" (list $v.kafka.topic) -}}
{{- $_ := set $kafka "group_id" $w.groupId -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- $es := include "spanway.elasticsearchConfig" $root | fromYaml -}}
{{- if eq .component "ingester" -}}
{{- $_ := set $es "shards" (int64 $w.shards) -}}
{{- $_ := set $es "replicas" (int64 $w.indexReplicas) -}}
{{- $_ := set $cfg "dead_letter" (dict "topic" $w.deadLetterTopic) -}}
{{- $_ := set $cfg "bulk" (dict "max_bytes_in_flight" (int64 $w.maxBytesInFlight)) -}}
{{- else -}}
{{- $_ := set $es "service_graph_index" $w.serviceGraphIndex -}}
{{- $_ := set $cfg "windows" (dict "max_spans_per_partition" (int64 $w.maxSpansPerPartition)) -}}
{{- end -}}
{{- $_ := set $cfg "elasticsearch" $es -}}
{{- end -}}
{{- $override := (get $v .component).config | default dict | deepCopy -}}
{{- toYaml (mustMergeOverwrite $cfg $override) -}}
{{- end -}}
