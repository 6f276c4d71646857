{{- define "streams.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streams.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "streams.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streams.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "streams.configFile" -}}
{{- $name := index . 1 -}}
{{- $ctx := index . 0 -}}
{{- $override := index $ctx.Values.config $name -}}
{{- if $override -}}{{ $override }}{{- else -}}{{ $ctx.Files.Get (printf "files/%s.yaml" $name) }}{{- end -}}
{{- end -}}
