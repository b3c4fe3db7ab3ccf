{{/* Names, labels and the checks every template relies on. */}}

{{- define "latchkey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

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

{{- define "latchkey.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The server pods (the Deployment's selector; migration Job pods must never match it). */}}
{{- define "latchkey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "latchkey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "latchkey.commonLabels" -}}
helm.sh/chart: {{ include "latchkey.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: latchkey
{{- end }}

{{- define "latchkey.labels" -}}
{{ include "latchkey.commonLabels" . }}
{{ include "latchkey.selectorLabels" . }}
{{- end }}

{{- define "latchkey.migrationSelectorLabels" -}}
app.kubernetes.io/name: {{ include "latchkey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: migration
{{- end }}

{{- define "latchkey.migrationLabels" -}}
{{ include "latchkey.commonLabels" . }}
{{ include "latchkey.migrationSelectorLabels" . }}
{{- end }}

{{- define "latchkey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "latchkey.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "latchkey.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding database URL, Redis URL, admin token and SMTP URL: the operator's or ours. */}}
{{- define "latchkey.secretName" -}}
{{- default (include "latchkey.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* Whether the chart renders its own Secret: no existingSecret, and something to keep in it. */}}
{{- define "latchkey.ownSecret" -}}
{{- if and (not .Values.existingSecret) (or (eq .Values.database.type "postgres") .Values.redis.enabled .Values.adminToken .Values.smtp.url) -}}
true
{{- end }}
{{- end }}

{{- define "latchkey.clientsSecretName" -}}
{{- default (printf "%s-clients" (include "latchkey.fullname" .)) .Values.existingClientsSecret }}
{{- end }}

{{/* Whether a clients file is mounted (LATCHKEY_CLIENTS_FILE). */}}
{{- define "latchkey.hasClients" -}}
{{- if or .Values.existingClientsSecret .Values.clients -}}
true
{{- end }}
{{- end }}

{{- define "latchkey.clientsFile" -}}
/etc/latchkey/clients.yaml
{{- end }}

{{- define "latchkey.scaledOut" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}
true
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot express. Included by the Deployment, so any render
(install, upgrade, template, lint) stops with the message.
*/}}
{{- define "latchkey.validate" -}}
{{- $external := and (eq .Values.database.type "postgres") .Values.redis.enabled }}
{{- if and (include "latchkey.scaledOut" .) (not $external) }}
{{- $asked := ternary "autoscaling.enabled=true" (printf "replicaCount=%d" (int .Values.replicaCount)) .Values.autoscaling.enabled }}
{{- fail (printf "\n\nlatchkey: %s needs an external PostgreSQL and Redis (database.type=postgres and redis.enabled=true): the embedded default (SQLite and in-process state) supports exactly one replica.\n" $asked) }}
{{- end }}
{{- if and (eq .Values.database.type "postgres") (not .Values.existingSecret) (not .Values.database.url) }}
{{- fail "\n\nlatchkey: database.type=postgres needs database.url (postgres://…) or existingSecret.\n" }}
{{- end }}
{{- if and .Values.redis.enabled (not .Values.existingSecret) (not .Values.redis.url) }}
{{- fail "\n\nlatchkey: redis.enabled=true needs redis.url (redis://…) or existingSecret.\n" }}
{{- end }}
{{- if and .Values.existingSecret (or .Values.database.url .Values.redis.url .Values.adminToken .Values.smtp.url) }}
{{- fail (printf "\n\nlatchkey: existingSecret is set, so database.url, redis.url, adminToken and smtp.url come from the Secret %s: leave them empty.\n" .Values.existingSecret) }}
{{- end }}
{{- if and .Values.persistence.enabled (ne .Values.database.type "sqlite") }}
{{- fail "\n\nlatchkey: persistence is for the embedded SQLite database; with database.type=postgres leave persistence.enabled=false.\n" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "\n\nlatchkey: autoscaling.minReplicas is greater than autoscaling.maxReplicas.\n" }}
{{- end }}
{{- end }}

{{/* The container's secret environment: from the chart's Secret or existingSecret. */}}
{{- define "latchkey.env" -}}
{{- $secret := include "latchkey.secretName" . }}
{{- $keys := .Values.existingSecretKeys }}
{{- if eq .Values.database.type "postgres" }}
- name: LATCHKEY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.databaseUrl }}
{{- end }}
{{- if .Values.redis.enabled }}
- name: LATCHKEY_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.redisUrl }}
{{- end }}
{{- if or .Values.existingSecret .Values.adminToken }}
- name: LATCHKEY_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.adminToken }}
      {{- if .Values.existingSecret }}
      optional: true
      {{- end }}
{{- end }}
{{- if or .Values.existingSecret .Values.smtp.url }}
- name: LATCHKEY_SMTP_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.smtpUrl }}
      {{- if .Values.existingSecret }}
      optional: true
      {{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
