{{/* Common names and labels. */}}
{{- define "corral.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "corral.labels" -}}
app.kubernetes.io/name: corral
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: corral
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "corral.selector" -}}
app.kubernetes.io/name: corral
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "corral.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.repository .name .root.Values.image.tag -}}
{{- end -}}

{{/* The environment variable carrying the session log's Redis URL. */}}
{{- define "corral.redisUrlEnv" -}}
- name: CORRAL_REDIS_URL
{{- if .Values.redis.bundled }}
  {{- /* Service environment variables rather than DNS: they work on clusters without cluster DNS too. */}}
  {{- $svc := printf "%s-redis" (include "corral.fullname" .) | upper | replace "-" "_" }}
  value: {{ printf "redis://$(%s_SERVICE_HOST):$(%s_SERVICE_PORT)" $svc $svc | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ required "redis.external.secretName is required when redis.bundled is false" .Values.redis.external.secretName }}
      key: {{ .Values.redis.external.secretKey }}
{{- end }}
{{- end -}}

{{/* Locked-down container security context shared by Corral's own containers. */}}
{{- define "corral.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
