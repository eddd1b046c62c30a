{{/*
Helpers of the Latchkey chart. Every name is namespaced `latchkey.*`.
*/}}

{{/* The chart name. */}}
{{- define "latchkey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: release and chart, unless the release name already holds the chart's. */}}
{{- define "latchkey.fullname" -}}
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

{{/* Name of a component's resources: latchkey.componentName (dict "ctx" $ "component" "gateway"). */}}
{{- define "latchkey.componentName" -}}
{{- printf "%s-%s" (include "latchkey.fullname" .ctx | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{/* chart label value */}}
{{- define "latchkey.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every resource. */}}
{{- define "latchkey.labels" -}}
helm.sh/chart: {{ include "latchkey.chart" . }}
{{ include "latchkey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: latchkey
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the release (no component). */}}
{{- define "latchkey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "latchkey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of a component's resources: latchkey.componentLabels (dict "ctx" $ "component" "auth"). */}}
{{- define "latchkey.componentLabels" -}}
{{ include "latchkey.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of a component. */}}
{{- define "latchkey.componentSelectorLabels" -}}
{{ include "latchkey.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image reference: digest wins over tag; the tag defaults to appVersion. */}}
{{- define "latchkey.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of the gateway and AuthService pods. */}}
{{- define "latchkey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "latchkey.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The issuer, required, without a trailing slash. */}}
{{- define "latchkey.issuer" -}}
{{- required "config.issuer is required: the public https origin of the gateway, e.g. https://auth.example.com" .Values.config.issuer | trimSuffix "/" }}
{{- end }}

{{/* The public host name: ingress.host, or the issuer's host. */}}
{{- define "latchkey.host" -}}
{{- if .Values.ingress.host }}
{{- .Values.ingress.host }}
{{- else }}
{{- (urlParse (include "latchkey.issuer" .)).hostname }}
{{- end }}
{{- end }}

{{/* Name of the Secret the pods read, created or existing. */}}
{{- define "latchkey.secretName" -}}
{{- if .Values.secrets.create }}
{{- include "latchkey.fullname" . }}
{{- else }}
{{- required "secrets.existingSecret is required (or set secrets.create=true and the secret values)" .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{/* In-cluster URL of the AuthService, for the gateway. */}}
{{- define "latchkey.authUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "latchkey.componentName" (dict "ctx" . "component" "auth")) .Release.Namespace (int .Values.auth.service.port) }}
{{- end }}

{{/*
The non-secret configuration as a map of environment variables. The ConfigMap holds it for
the Deployments; the migration Job, a hook that runs before the ConfigMap exists, gets the
same variables inline. `latchkey migrate` validates the whole configuration first.
*/}}
{{/* config.resources as the inline list LATCHKEY_RESOURCES takes: [{url="…",scopes="…",default=true}]. */}}
{{- define "latchkey.resourcesEnv" -}}
[{{- range $i, $r := . }}{{ if $i }},{{ end }}{url={{ $r.url | quote }}{{ with $r.scopes }},scopes={{ . | quote }}{{ end }}{{ if $r.default }},default=true{{ end }}}{{- end }}]
{{- end }}

{{- define "latchkey.configData" -}}
{{- $issuer := include "latchkey.issuer" . -}}
{{- $cors := .Values.config.corsOrigins | default (list $issuer) -}}
{{- $trustXff := .Values.config.trustForwardedFor -}}
{{- if kindIs "invalid" $trustXff }}{{ $trustXff = .Values.ingress.enabled }}{{ end -}}
LATCHKEY_ENV: {{ .Values.config.env | quote }}
LATCHKEY_ISSUER: {{ $issuer | quote }}
LATCHKEY_HTTP_ADDR: "0.0.0.0:8080"
LATCHKEY_GRPC_ADDR: "0.0.0.0:50051"
LATCHKEY_METRICS_ADDR: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
LATCHKEY_CORS_ORIGINS: {{ join " " $cors | quote }}
LATCHKEY_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
LATCHKEY_TRUST_FORWARDED_FOR: {{ $trustXff | toString | quote }}
RUST_LOG: {{ .Values.config.logLevel | quote }}
{{- with .Values.config.redisUrl }}
LATCHKEY_REDIS_URL: {{ . | quote }}
{{- end }}
LATCHKEY_DATABASE_ACQUIRE_TIMEOUT_MS: {{ .Values.config.databaseAcquireTimeoutMs | int | toString | quote }}
LATCHKEY_DATABASE_FAIL_FAST_MS: {{ .Values.config.databaseFailFastMs | int | toString | quote }}
LATCHKEY_REGISTRATION: {{ .Values.config.registration | quote }}
{{- with .Values.config.resources }}
LATCHKEY_RESOURCES: {{ include "latchkey.resourcesEnv" . | quote }}
{{- end }}
{{- with .Values.config.scopes }}
LATCHKEY_SCOPES: {{ . | quote }}
{{- end }}
{{- with .Values.config.defaultScopes }}
LATCHKEY_DEFAULT_SCOPES: {{ . | quote }}
{{- end }}
{{- with .Values.config.otel.endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- with .Values.config.otel.protocol }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ . | quote }}
{{- end }}
{{- with .Values.config.otel.resourceAttributes }}
OTEL_RESOURCE_ATTRIBUTES: {{ . | quote }}
{{- end }}
{{- range $k, $v := .Values.config.extraEnv }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* An env entry read from the Secret: latchkey.secretEnv (dict "ctx" $ "name" "LATCHKEY_X" "key" "k" "optional" false). */}}
{{- define "latchkey.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "latchkey.secretName" .ctx }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/*
The secret variables of the AuthService (gateway true) and of the migration Job (gateway
false: it needs no gateway credential): latchkey.authSecretEnv (dict "ctx" $ "gateway" true).
*/}}
{{- define "latchkey.authSecretEnv" -}}
{{- $ctx := .ctx -}}
{{- $keys := $ctx.Values.secrets.keys -}}
{{ include "latchkey.secretEnv" (dict "ctx" $ctx "name" "LATCHKEY_DATABASE_URL" "key" $keys.databaseUrl) }}
{{ include "latchkey.secretEnv" (dict "ctx" $ctx "name" "LATCHKEY_KEY_ENCRYPTION_KEY" "key" $keys.keyEncryptionKey) }}
{{- if .gateway }}
{{ include "latchkey.secretEnv" (dict "ctx" $ctx "name" "LATCHKEY_GATEWAY_SECRET" "key" $keys.gatewaySecret) }}
{{ include "latchkey.secretEnv" (dict "ctx" $ctx "name" "LATCHKEY_ADMIN_SECRET" "key" $keys.adminSecret "optional" true) }}
{{- end }}
{{- if not $ctx.Values.config.redisUrl }}
{{ include "latchkey.secretEnv" (dict "ctx" $ctx "name" "LATCHKEY_REDIS_URL" "key" $keys.redisUrl "optional" true) }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when the configuration or a chart-made Secret changes. */}}
{{- define "latchkey.checksumAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if .Values.secrets.create }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/* Topology spread: a soft spread over nodes, plus the operator's constraints. */}}
{{- define "latchkey.topologySpread" -}}
{{- $c := index .ctx.Values .component "spreadAcrossNodes" -}}
{{- $extra := index .ctx.Values .component "topologySpreadConstraints" -}}
{{- if or $c $extra }}
topologySpreadConstraints:
  {{- if $c }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "latchkey.componentSelectorLabels" . | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
  {{- end }}
  {{- with $extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The writable scratch space: the root filesystem is read-only. */}}
{{- define "latchkey.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
