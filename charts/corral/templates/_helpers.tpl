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
  value: {{ printf "redis://%s-redis.%s.svc:6379" (include "corral.fullname" .) .Release.Namespace | quote }}
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
