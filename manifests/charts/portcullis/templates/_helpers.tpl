{{/* The name of every object: the release name when it contains "portcullis", else "<release>-portcullis". */}}
{{- define "portcullis.fullname" -}}
{{- if contains "portcullis" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-portcullis" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of the server's own objects (the same as the kustomize overlays'). */}}
{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: portcullis
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "portcullis.labels" -}}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/part-of: portcullis
{{- end -}}

{{/* Labels of supporting objects (RBAC, certificates). */}}
{{- define "portcullis.supportLabels" -}}
app.kubernetes.io/name: portcullis
app.kubernetes.io/part-of: portcullis
{{- end -}}

{{- define "portcullis.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Namespaces never sent to the webhooks: the configured ones and the release's. */}}
{{- define "portcullis.exemptNamespaces" -}}
{{- $ns := .Values.webhooks.exemptNamespaces | default list -}}
{{- if not (has .Release.Namespace $ns) -}}{{- $ns = append $ns .Release.Namespace -}}{{- end -}}
{{- toJson $ns -}}
{{- end -}}

{{/* config.yaml: the values' config with the exempt namespaces added. */}}
{{- define "portcullis.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $exempt := fromJsonArray (include "portcullis.exemptNamespaces" .) -}}
{{- range (get $cfg "exempt_namespaces" | default list) -}}
{{- if not (has . $exempt) -}}{{- $exempt = append $exempt . -}}{{- end -}}
{{- end -}}
{{- $_ := set $cfg "exempt_namespaces" $exempt -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The ConfigMap's name carries a hash of its content, as kustomize's
configMapGenerator does: a change rolls the Deployment. */}}
{{- define "portcullis.configName" -}}
{{- printf "%s-config-%s" (include "portcullis.fullname" .) (include "portcullis.config" . | sha256sum | trunc 10) -}}
{{- end -}}

{{- define "portcullis.policiesName" -}}
{{- if .Values.policies.existingConfigMap -}}
{{- .Values.policies.existingConfigMap -}}
{{- else if .Values.policies.files -}}
{{- printf "%s-policies-%s" (include "portcullis.fullname" .) (toJson .Values.policies.files | sha256sum | trunc 10) -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.selfSigned" -}}
{{- if eq .Values.certificates.mode "self-signed" -}}true{{- end -}}
{{- end -}}
