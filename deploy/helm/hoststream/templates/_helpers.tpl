{{/* Names and labels shared by every object of the release. */}}

{{- define "hoststream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hoststream.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hoststream.labels" -}}
{{ include "hoststream.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
hoststream.io/region: {{ .Values.region | quote }}
{{- end -}}

{{- define "hoststream.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "hoststream.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "hoststream.fullname" .)) -}}
{{- end -}}

{{/* Settings every component reads: the ConfigMap, then the Secret (secrets never in the ConfigMap). */}}
{{- define "hoststream.envFrom" -}}
- configMapRef:
    name: {{ include "hoststream.fullname" . }}-config
- secretRef:
    name: {{ include "hoststream.secretName" . }}
{{- end -}}

{{/* The /metrics port and the probes on it; every component serves it. */}}
{{- define "hoststream.metricsPort" -}}
- name: metrics
  containerPort: {{ .Values.metricsPort }}
  protocol: TCP
{{- end -}}

{{- define "hoststream.metricsProbes" -}}
livenessProbe:
  httpGet:
    path: /metrics
    port: metrics
  initialDelaySeconds: 10
  periodSeconds: 20
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /metrics
    port: metrics
  periodSeconds: 10
{{- end -}}

{{- define "hoststream.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metricsPort | quote }}
prometheus.io/path: /metrics
{{- end -}}
