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

{{/* In-cluster URL of the AuthService, for the gateway: https when gRPC has TLS. */}}
{{- define "latchkey.authUrl" -}}
{{- printf "%s://%s.%s.svc:%d" (ternary "https" "http" (eq (include "latchkey.grpcTls" .) "true")) (include "latchkey.componentName" (dict "ctx" . "component" "auth")) .Release.Namespace (int .Values.auth.service.port) }}
{{- end }}

{{/* "true" when the gRPC port serves TLS (a Secret named, or cert-manager), else "". */}}
{{- define "latchkey.grpcTls" -}}
{{- if or .Values.grpc.tls.secretName .Values.grpc.tls.certManager.enabled }}true{{ end }}
{{- end }}

{{/*
Refuses gRPC TLS values that cannot work, and production values with plaintext gRPC: the
gateway's secret, passwords and tokens would cross the pod network in clear. Renders nothing.
*/}}
{{- define "latchkey.checkGrpcTls" -}}
{{- $tls := .Values.grpc.tls -}}
{{- if and (eq .Values.config.env "production") (not (include "latchkey.grpcTls" .)) }}
{{- fail "production needs TLS on gRPC: set grpc.tls.secretName (a Secret with tls.crt, tls.key and ca.crt) or grpc.tls.certManager.enabled=true with grpc.tls.certManager.issuerRef.name" }}
{{- end }}
{{- if and $tls.secretName $tls.certManager.enabled }}
{{- fail "grpc.tls: set secretName or certManager.enabled, not both" }}
{{- end }}
{{- if and $tls.certManager.enabled (not $tls.certManager.issuerRef.name) }}
{{- fail "grpc.tls.certManager.issuerRef.name is required with grpc.tls.certManager.enabled" }}
{{- end }}
{{- if and $tls.clientAuth.enabled (not (include "latchkey.grpcTls" .)) }}
{{- fail "grpc.tls.clientAuth needs TLS: set grpc.tls.secretName or grpc.tls.certManager" }}
{{- end }}
{{- if and $tls.clientAuth.enabled $tls.secretName (not $tls.clientAuth.gatewaySecretName) }}
{{- fail "grpc.tls.clientAuth.gatewaySecretName is required with grpc.tls.secretName: the gateway's client certificate" }}
{{- end }}
{{- end }}

{{/* The Secret with the AuthService's certificate, key and CA. */}}
{{- define "latchkey.grpcTlsSecret" -}}
{{- .Values.grpc.tls.secretName | default (printf "%s-grpc-tls" (include "latchkey.fullname" .)) }}
{{- end }}

{{/* The Secret with the gateway's client certificate (with clientAuth). */}}
{{- define "latchkey.grpcGatewaySecret" -}}
{{- .Values.grpc.tls.clientAuth.gatewaySecretName | default (printf "%s-grpc-gateway" (include "latchkey.fullname" .)) }}
{{- end }}

{{/*
The non-secret configuration as a map of environment variables. The ConfigMap holds it for
the Deployments; the migration Job, a hook that runs before the ConfigMap exists, gets the
same variables inline. `latchkey migrate` validates the whole configuration first.
*/}}
{{/* config.resources as the inline list LATCHKEY_RESOURCES takes: [{url="…",scopes="…",default=true,implies={"a"="b"}}]. */}}
{{- define "latchkey.resourcesEnv" -}}
[{{- range $i, $r := . }}{{ if $i }},{{ end }}{url={{ $r.url | quote }}{{ with $r.scopes }},scopes={{ . | quote }}{{ end }}{{ if $r.default }},default=true{{ end }}{{ with $r.implies }},implies={ {{- $first := true }}{{ range $k, $v := . }}{{ if not $first }},{{ end }}{{ $k | quote }}={{ $v | quote }}{{ $first = false }}{{ end }}}{{ end }}}{{- end }}]
{{- end }}

{{- define "latchkey.configData" -}}
{{- $issuer := include "latchkey.issuer" . -}}
{{- $cors := .Values.config.corsOrigins | default (list $issuer) -}}
{{- $proxies := .Values.config.trustedProxies -}}
{{- if kindIs "invalid" $proxies }}
{{- $proxies = ternary (list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "fc00::/7") (list) .Values.ingress.enabled }}
{{- end -}}
{{- $http := .Values.config.http -}}
LATCHKEY_ENV: {{ .Values.config.env | quote }}
LATCHKEY_ISSUER: {{ $issuer | quote }}
LATCHKEY_HTTP_ADDR: "0.0.0.0:8080"
LATCHKEY_GRPC_ADDR: "0.0.0.0:50051"
LATCHKEY_METRICS_ADDR: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
LATCHKEY_CORS_ORIGINS: {{ join " " $cors | quote }}
LATCHKEY_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
LATCHKEY_TRUSTED_PROXIES: {{ join "," $proxies | quote }}
LATCHKEY_FORWARDED_HEADER: {{ .Values.config.forwardedHeader | quote }}
LATCHKEY_FORWARD_AUTH_ADDR: {{ printf "0.0.0.0:%d" (int .Values.gateway.forwardAuth.port) | quote }}
LATCHKEY_RATE_LIMIT_FORWARD_AUTH_PER_MIN: {{ .Values.gateway.forwardAuth.rateLimitPerMin | int64 | toString | quote }}
LATCHKEY_PUBLIC_HEALTH_DETAILS: {{ .Values.gateway.publicHealthDetails | toString | quote }}
LATCHKEY_GRPC_REFLECTION: {{ .Values.auth.grpcReflection | toString | quote }}
LATCHKEY_HTTP_HEADER_TIMEOUT_MS: {{ $http.headerTimeoutMs | int64 | toString | quote }}
LATCHKEY_HTTP_IDLE_TIMEOUT_MS: {{ $http.idleTimeoutMs | int64 | toString | quote }}
LATCHKEY_HTTP_REQUEST_TIMEOUT_MS: {{ $http.requestTimeoutMs | int64 | toString | quote }}
LATCHKEY_HTTP_BODY_TIMEOUT_MS: {{ $http.bodyTimeoutMs | int64 | toString | quote }}
LATCHKEY_HTTP_MAX_CONNECTIONS: {{ $http.maxConnections | int64 | toString | quote }}
{{- if not (kindIs "invalid" $http.maxConnectionsPerNetwork) }}
LATCHKEY_HTTP_MAX_CONNECTIONS_PER_NETWORK: {{ $http.maxConnectionsPerNetwork | int64 | toString | quote }}
{{- end }}
LATCHKEY_HTTP2_MAX_CONCURRENT_STREAMS: {{ $http.http2MaxConcurrentStreams | int64 | toString | quote }}
LATCHKEY_GRPC_MAX_RECEIVE_MESSAGE_BYTES: {{ int64 .Values.grpc.limits.maxReceiveMessageBytes | toString | quote }}
LATCHKEY_GRPC_MAX_SEND_MESSAGE_BYTES: {{ int64 .Values.grpc.limits.maxSendMessageBytes | toString | quote }}
LATCHKEY_GRPC_CONCURRENCY_PER_CONNECTION: {{ int64 .Values.grpc.limits.concurrencyPerConnection | toString | quote }}
LATCHKEY_GRPC_MAX_CONCURRENT_STREAMS: {{ int64 .Values.grpc.limits.maxConcurrentStreams | toString | quote }}
LATCHKEY_GRPC_KEEPALIVE_INTERVAL_SECS: {{ int64 .Values.grpc.limits.keepaliveIntervalSeconds | toString | quote }}
LATCHKEY_GRPC_KEEPALIVE_TIMEOUT_SECS: {{ int64 .Values.grpc.limits.keepaliveTimeoutSeconds | toString | quote }}
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
LATCHKEY_UNKNOWN_SCOPES: {{ .Values.config.unknownScopes | quote }}
LATCHKEY_MAX_DYNAMIC_CLIENTS: {{ .Values.config.limits.maxDynamicClients | int64 | toString | quote }}
LATCHKEY_MAX_SESSIONS_PER_ADDRESS: {{ .Values.config.limits.maxSessionsPerAddress | int64 | toString | quote }}
LATCHKEY_SESSION_CAPACITY: {{ .Values.config.limits.sessionCapacity | int64 | toString | quote }}
LATCHKEY_MAX_TOKEN_REVOCATIONS_PER_CLIENT: {{ .Values.config.limits.maxTokenRevocationsPerClient | int64 | toString | quote }}
LATCHKEY_CIMD: {{ .Values.config.clientDocuments.enabled | toString | quote }}
LATCHKEY_CIMD_ALLOWED_HOSTS: {{ join "," .Values.config.clientDocuments.allowedHosts | quote }}
LATCHKEY_CIMD_DENIED_HOSTS: {{ join "," .Values.config.clientDocuments.deniedHosts | quote }}
LATCHKEY_CIMD_TRUSTED_HOSTS: {{ join "," .Values.config.clientDocuments.trustedHosts | quote }}
LATCHKEY_LOCKOUT_THRESHOLD: {{ .Values.config.lockout.threshold | int64 | toString | quote }}
LATCHKEY_LOCKOUT_BASE_SECS: {{ .Values.config.lockout.baseSeconds | int64 | toString | quote }}
LATCHKEY_LOCKOUT_MAX_SECS: {{ .Values.config.lockout.maxSeconds | int64 | toString | quote }}
LATCHKEY_LOCKOUT_ACCOUNT_THRESHOLD: {{ .Values.config.lockout.accountThreshold | int64 | toString | quote }}
LATCHKEY_LOCKOUT_ACCOUNT_BASE_SECS: {{ .Values.config.lockout.accountBaseSeconds | int64 | toString | quote }}
LATCHKEY_LOCKOUT_ACCOUNT_MAX_SECS: {{ .Values.config.lockout.accountMaxSeconds | int64 | toString | quote }}
LATCHKEY_DYNAMIC_CLIENT_IDLE_DAYS: {{ .Values.config.retention.dynamicClientIdleDays | int64 | toString | quote }}
LATCHKEY_DYNAMIC_CLIENT_UNUSED_HOURS: {{ .Values.config.retention.dynamicClientUnusedHours | int64 | toString | quote }}
LATCHKEY_DYNAMIC_CLIENT_SECRET_DAYS: {{ .Values.config.retention.dynamicClientSecretDays | int64 | toString | quote }}
LATCHKEY_REFRESH_MAX_AGE_DAYS: {{ .Values.config.retention.refreshMaxAgeDays | int64 | toString | quote }}
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
