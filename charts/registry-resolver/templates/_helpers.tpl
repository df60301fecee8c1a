{{- define "rr.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rr.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rr.labels" -}}
{{ include "rr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rr.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "existing" -}}
{{- required "certificates.existing.secretName is required with mode existing" .Values.certificates.existing.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "rr.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "rr.serviceName" -}}
{{- include "rr.fullname" . -}}
{{- end -}}

{{/* The node agent's pods: a name of their own, so the Service and the
Deployment's selector never pick them up. */}}
{{- define "rr.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-node-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The image: by digest when one is given (what was pushed, exactly),
else by tag (the chart's appVersion unless set). */}}
{{- define "rr.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}
