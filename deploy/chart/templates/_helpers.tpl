{{/*
The image of the agents and the maintenance workload: repository:tag, the tag defaulting to
the chart's appVersion (the crate version), or repository@digest when a digest is given.
*/}}
{{- define "kairn.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The repository location, which every install must give. */}}
{{- define "kairn.repository" -}}
{{- required "repository.url is required: the repository's location, e.g. --set repository.url=s3://my-bucket/my-cluster" .Values.repository.url -}}
{{- end -}}

{{/* The user name the API server gives the agents' ServiceAccount. */}}
{{- define "kairn.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:kairn-node-agent
{{- end -}}
