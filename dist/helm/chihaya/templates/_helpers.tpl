{{/* The chart name, shortened to a DNS label. */}}
{{- define "chihaya.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object it makes. */}}
{{- define "chihaya.fullname" -}}
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

{{- define "chihaya.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object, without app.kubernetes.io/component. */}}
{{- define "chihaya.commonLabels" -}}
helm.sh/chart: {{ include "chihaya.chart" . }}
app.kubernetes.io/name: {{ include "chihaya.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the tracker's objects. */}}
{{- define "chihaya.labels" -}}
{{ include "chihaya.commonLabels" . }}
app.kubernetes.io/component: tracker
{{- end }}

{{/* What the tracker's Services and budgets select its pods by. */}}
{{- define "chihaya.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chihaya.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: tracker
{{- end }}

{{/* What the chart's Redis is selected by. */}}
{{- define "chihaya.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "chihaya.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "chihaya.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chihaya.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "chihaya.snapshotClaim" -}}
{{- .Values.snapshot.existingClaim | default (printf "%s-snapshot" (include "chihaya.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{- define "chihaya.redisName" -}}
{{- printf "%s-redis" (include "chihaya.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
chihaya.config renders the tracker's configuration file: config from the
values, with the listener addresses taken from ports and, with
redis.enabled, the storage pointed at the chart's Redis. It also refuses
the combinations that would deploy a broken tracker.
*/}}
{{- define "chihaya.config" -}}
{{- $file := deepCopy (.Values.config | default dict) }}
{{- $c := get $file "chihaya" | default dict }}
{{- range $key := list "metrics_addr" "prometheus_addr" }}
{{- if hasKey $c $key }}
{{- fail (printf "config.chihaya.%s: set by the chart from ports.metrics; remove it" $key) }}
{{- end }}
{{- end }}
{{- if .Values.ports.metrics }}
{{- $_ := set $c "metrics_addr" (printf ":%v" .Values.ports.metrics) }}
{{- else }}
{{- fail "ports.metrics: must be set; the probes and /metrics use it" }}
{{- end }}
{{- range $fe := list "http" "udp" "websocket" }}
{{- $sec := get $c $fe | default dict }}
{{- if hasKey $sec "addr" }}
{{- fail (printf "config.chihaya.%s.addr: set by the chart from ports.%s; remove it" $fe $fe) }}
{{- end }}
{{- $port := get $.Values.ports $fe }}
{{- if $port }}
{{- $_ := set $sec "addr" (printf ":%v" $port) }}
{{- $_ := set $c $fe $sec }}
{{- end }}
{{- end }}
{{- if .Values.redis.enabled }}
{{- $auth := "" }}
{{- if .Values.redis.password }}
{{- if not .Values.configSecret }}
{{- fail "redis.password: needs configSecret: true, since the password is part of the configuration" }}
{{- end }}
{{- $auth = printf ":%s@" (.Values.redis.password | urlquery) }}
{{- end }}
{{- $sc := deepCopy (.Values.redis.config | default dict) }}
{{- $_ := set $sc "redis_broker" (printf "redis://%s%s:6379/0" $auth (include "chihaya.redisName" .)) }}
{{- $_ := set $c "storage" (dict "name" "redis" "config" $sc) }}
{{- end }}
{{- if .Values.snapshot.enabled }}
{{- $storage := get $c "storage" | default dict }}
{{- if or .Values.redis.enabled (eq (get $storage "name" | default "memory") "redis") }}
{{- fail "snapshot.enabled: snapshots are for the memory store; with Redis the swarms live in Redis" }}
{{- end }}
{{- $sc := get $storage "config" | default dict }}
{{- $_ := set $sc "snapshot_path" "/var/lib/chihaya/swarms.snap" }}
{{- $_ := set $sc "snapshot_interval" .Values.snapshot.interval }}
{{- $_ := set $storage "config" $sc }}
{{- $_ := set $c "storage" $storage }}
{{- end }}
{{- $several := or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}
{{- if $several }}
{{- $storage := get $c "storage" | default dict }}
{{- if ne (get $storage "name" | default "memory") "redis" }}
{{- fail "several replicas (replicaCount > 1 or autoscaling.enabled) need shared storage: set redis.enabled, or config.chihaya.storage.name: redis" }}
{{- end }}
{{- $udp := get $c "udp" | default dict }}
{{- if and .Values.ports.udp (not (get $udp "private_key")) }}
{{- fail "several replicas need one shared config.chihaya.udp.private_key, so that a UDP connection ID from one replica is accepted by the others (and configSecret: true to keep it out of a ConfigMap)" }}
{{- end }}
{{- end }}
{{- $_ := set $file "chihaya" $c }}
{{- toYaml $file }}
{{- end }}
