{{- /* Helpers: parsed with the rest, never rendered on their own. */ -}}
{{- define "common.labels" -}}
app.kubernetes.io/managed-by: hyperfleet
app.kubernetes.io/part-of: {{ .Adapter.Name }}
hyperfleet.io/cluster-name: {{ dnsLabel .Cluster.Name | quote }}
{{- end -}}
