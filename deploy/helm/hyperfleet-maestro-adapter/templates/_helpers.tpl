{{/* The adapter's name: adapter.name, or its type. */}}
{{- define "adapter.name" -}}
{{- default .Values.adapter.type .Values.adapter.name -}}
{{- end -}}

{{/* Every object's name: hyperfleet-maestro-adapter-<adapter name>, as the kustomize overlays name them, so that releases of different types share a namespace. */}}
{{- define "adapter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "hyperfleet-maestro-adapter-%s" (include "adapter.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The kubernetes delivery's ClusterRole and ClusterRoleBinding: cluster-scoped, so named with the release namespace too. */}}
{{- define "adapter.clusterRBACName" -}}
{{- printf "%s-%s" (include "adapter.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* The template type's ConfigMaps, named as the kustomize overlay names them. */}}
{{- define "adapter.configMapName" -}}
{{- if $.root.Values.fullnameOverride -}}
{{- printf "%s-%s" $.root.Values.fullnameOverride $.what | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "hyperfleet-maestro-adapter-%s-%s" $.what (include "adapter.name" $.root) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: the instance keeps one adapter's selectors off the others' pods. */}}
{{- define "adapter.selectorLabels" -}}
app.kubernetes.io/name: hyperfleet-maestro-adapter
app.kubernetes.io/instance: {{ include "adapter.fullname" . }}
{{- end -}}

{{- define "adapter.labels" -}}
{{ include "adapter.selectorLabels" . }}
app.kubernetes.io/part-of: hyperfleet
app.kubernetes.io/component: adapter
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | trunc 63 | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "adapter.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The settings ConfigMap's data (what deploy/kustomize/base/adapter.env and an overlay set), values.settings last. */}}
{{- define "adapter.settings" -}}
{{- $name := include "adapter.name" . -}}
{{- $topic := .Values.broker.topic -}}
{{- if not $topic -}}
{{- $topic = printf "%s-%s" .Release.Namespace (ternary "nodepools" "clusters" (eq .Values.adapter.type "nodepool")) -}}
{{- end -}}
{{- $s := dict
  "ADAPTER_TYPE" .Values.adapter.type
  "ADAPTER_NAME" $name
  "MAESTRO_SOURCE_ID" (default (printf "hyperfleet-adapter-%s" $name) .Values.adapter.sourceId)
  "SOURCE" "broker"
  "BROKER_TYPE" "rabbitmq"
  "BROKER_RABBITMQ_EXCHANGE_TYPE" "topic"
  "HYPERFLEET_BROKER_TOPIC" $topic
  "HYPERFLEET_BROKER_SUBSCRIPTION_ID" (default (printf "hyperfleet-adapter-%s" $name) .Values.adapter.subscriptionId)
  "DELIVERY" .Values.delivery
  "HYPERFLEET_API_URL" .Values.hyperfleetAPI.url
  "HYPERFLEET_API_TIMEOUT" .Values.hyperfleetAPI.timeout
  "CONCURRENCY" .Values.concurrency
  "MAX_ATTEMPTS" .Values.maxAttempts
  "STATUS_TIMEOUT" .Values.statusTimeout
  "DRAIN_TIMEOUT" .Values.drainTimeout
  "HEALTH_ADDR" ":8080"
  "METRICS_ADDR" ":9090"
  "LOG_FORMAT" "json"
  "LOG_LEVEL" .Values.logLevel
-}}
{{- if ne .Values.delivery "kubernetes" -}}
{{- $_ := set $s "MAESTRO_GRPC_ENDPOINT" .Values.maestro.grpcEndpoint -}}
{{- $_ := set $s "MAESTRO_HTTP_ENDPOINT" .Values.maestro.httpEndpoint -}}
{{- end -}}
{{- if eq .Values.delivery "job" -}}
{{- /* What components/job-delivery and overlays-job set: the Jobs' maestro-cli runs the adapter's image and mounts its client certificate. */ -}}
{{- $_ := set $s "JOB_IMAGE" (default (include "adapter.image" .) .Values.job.image) -}}
{{- $_ := set $s "JOB_MAESTRO_TLS_SECRET" (default .Values.maestro.clientTLSSecret .Values.job.maestroTLSSecret) -}}
{{- end -}}
{{- if eq .Values.adapter.type "pullsecret" -}}
{{- $_ := set $s "PULL_SECRET_FILE" "/etc/hyperfleet/pull-secret/.dockerconfigjson" -}}
{{- end -}}
{{- if eq .Values.adapter.type "template" -}}
{{- $_ := set $s "TEMPLATE_DIR" "/etc/hyperfleet/templates" -}}
{{- $_ := set $s "TEMPLATE_VALUES_FILE" "/etc/hyperfleet/values/values.yaml" -}}
{{- end -}}
{{- with .Values.tracing.otlpEndpoint -}}
{{- $_ := set $s "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}
{{- end -}}
{{- with .Values.tracing.protocol -}}
{{- $_ := set $s "OTEL_EXPORTER_OTLP_PROTOCOL" . -}}
{{- end -}}
{{- range $k, $v := .Values.settings -}}
{{- $_ := set $s $k $v -}}
{{- end -}}
{{- range $k := keys $s | sortAlpha }}
{{ $k }}: {{ get $s $k | toString | quote }}
{{- end -}}
{{- end -}}
