{{/* Names and labels shared by every template. */}}

{{- define "deepspeech-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deepspeech-operator.fullname" -}}
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

{{- define "deepspeech-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "deepspeech-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deepspeech-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "deepspeech-operator.labels" -}}
helm.sh/chart: {{ include "deepspeech-operator.chart" . }}
{{ include "deepspeech-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deepspeech-operator
{{- end }}

{{- define "deepspeech-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "deepspeech-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "deepspeech-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The prefixes the operator enforces: the configured ones, or "<trainer repository>:" (its default). */}}
{{- define "deepspeech-operator.allowedImagePrefixes" -}}
{{- if .Values.trainer.allowedImagePrefixes }}
{{- join "," .Values.trainer.allowedImagePrefixes }}
{{- else }}
{{- printf "%s:" .Values.trainer.repository }}
{{- end }}
{{- end }}

{{/*
The operator's rules, the same in a ClusterRole (cluster-wide) and in each Role (watchNamespaces); docs/operator.md
explains every line. Never Secrets: pods get S3 credentials through secretKeyRef, resolved by the kubelet. The
status rule is also what the operator grants each trainer's Role, which RBAC escalation prevention requires it to
hold itself.
*/}}
{{- define "deepspeech-operator.rules" -}}
- apiGroups: [training.deepspeech.dev]
  resources: [deepspeechtrainings]
  verbs: [get, list, watch, patch]
- apiGroups: [training.deepspeech.dev]
  resources: [deepspeechtrainings/status]
  verbs: [get, patch]
- apiGroups: [training.deepspeech.dev]
  resources: [deepspeechtrainings/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get, list, watch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create, get, list, watch, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, get, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
