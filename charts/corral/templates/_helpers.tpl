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

{{/* The Secret holding the bundled Redis's system password. */}}
{{- define "corral.redisAuthSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis-auth" (include "corral.fullname" .)) -}}
{{- end -}}

{{/* The environment variables carrying the session log's Redis URL, with Corral's system credentials. */}}
{{- define "corral.redisUrlEnv" -}}
{{- if .Values.redis.bundled }}
- name: CORRAL_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "corral.redisAuthSecret" . }}
      key: {{ .Values.redis.auth.existingSecretKey }}
- name: CORRAL_REDIS_URL
  {{- /* Service environment variables rather than DNS: they work on clusters without cluster DNS too. */}}
  {{- $svc := printf "%s-redis" (include "corral.fullname" .) | upper | replace "-" "_" }}
  value: {{ printf "redis://corral:$(CORRAL_REDIS_PASSWORD)@$(%s_SERVICE_HOST):$(%s_SERVICE_PORT)" $svc $svc | quote }}
{{- else }}
- name: CORRAL_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "redis.external.secretName is required when redis.bundled is false" .Values.redis.external.secretName }}
      key: {{ .Values.redis.external.secretKey }}
{{- end }}
{{- end -}}

{{/* The Secret holding the object store's S3 credentials (accessKeyId, secretAccessKey). */}}
{{- define "corral.objectStoreSecret" -}}
{{- if .Values.objectStore.bundled -}}
{{- .Values.objectStore.auth.existingSecret | default (printf "%s-object-store-auth" (include "corral.fullname" .)) -}}
{{- else -}}
{{- required "objectStore.external.secretName is required when objectStore.bundled is false" .Values.objectStore.external.secretName -}}
{{- end -}}
{{- end -}}

{{/* The gateway's object store settings: the bundled server's Service, or the external bucket. */}}
{{- define "corral.objectStoreEnv" -}}
- name: CORRAL_OBJECT_STORE_BUCKET
  value: {{ .Values.objectStore.bucket | quote }}
- name: CORRAL_MAX_FILE_BYTES
  value: {{ .Values.objectStore.maxFileBytes | int64 | quote }}
- name: CORRAL_FILES_NAMESPACE_QUOTA_BYTES
  value: {{ .Values.objectStore.namespaceQuotaBytes | int64 | quote }}
- name: CORRAL_MAX_UPLOADS
  value: {{ .Values.objectStore.maxUploads | int64 | quote }}
- name: CORRAL_MAX_UPLOADS_PER_NAMESPACE
  value: {{ .Values.objectStore.maxUploadsPerNamespace | int64 | quote }}
- name: CORRAL_UPLOAD_IDLE_TIMEOUT_SECONDS
  value: {{ .Values.objectStore.uploadIdleTimeoutSeconds | int64 | quote }}
- name: CORRAL_UPLOAD_MIN_KIB_PER_SECOND
  value: {{ .Values.objectStore.uploadMinKiBPerSecond | int64 | quote }}
{{- if .Values.objectStore.bundled }}
- name: CORRAL_OBJECT_STORE_ENDPOINT
  {{- $svc := printf "%s-object-store" (include "corral.fullname" .) | upper | replace "-" "_" }}
  value: {{ printf "http://$(%s_SERVICE_HOST):$(%s_SERVICE_PORT)" $svc $svc | quote }}
{{- else }}
{{- with .Values.objectStore.external.endpoint }}
- name: CORRAL_OBJECT_STORE_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: CORRAL_OBJECT_STORE_REGION
  value: {{ .Values.objectStore.external.region | quote }}
{{- end }}
- name: CORRAL_OBJECT_STORE_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "corral.objectStoreSecret" . }}
      key: accessKeyId
- name: CORRAL_OBJECT_STORE_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "corral.objectStoreSecret" . }}
      key: secretAccessKey
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

{{/* The PriorityClass of Corral's own pods and of sandboxes ("" when none is set). */}}
{{- define "corral.systemPriorityClass" -}}
{{- .Values.priorityClasses.system.name | default (ternary (printf "%s-system" (include "corral.fullname" .)) "" .Values.priorityClasses.create) -}}
{{- end -}}

{{- define "corral.sandboxPriorityClass" -}}
{{- .Values.priorityClasses.sandbox.name | default (ternary (printf "%s-sandbox" (include "corral.fullname" .)) "" .Values.priorityClasses.create) -}}
{{- end -}}

{{/* `priorityClassName: ...` for a pod spec of Corral's own, or nothing. */}}
{{- define "corral.systemPriority" -}}
{{- with include "corral.systemPriorityClass" . }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/*
A pod's affinity: the values' own when set, else a preference (never a requirement, so a one-node cluster still
runs every replica) for spreading the component's replicas over nodes. Call with (dict "root" . "component" "gateway"
"affinity" .Values.gateway.affinity).
*/}}
{{- define "corral.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "corral.selector" .root | nindent 12 }}
            app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}
