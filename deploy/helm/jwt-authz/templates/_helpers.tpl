{{/* The chart name, or nameOverride. */}}
{{- define "jwt-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: fullnameOverride, else the release name when it already says jwt-authz. */}}
{{- define "jwt-authz.fullname" -}}
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

{{/* Labels that select the pods: never change them on an installed release. */}}
{{- define "jwt-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jwt-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Pod labels: the selector plus what describes this version. */}}
{{- define "jwt-authz.podLabels" -}}
{{ include "jwt-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: ext-authz
app.kubernetes.io/part-of: jwt-authz
{{- end }}

{{/* Labels of every object. */}}
{{- define "jwt-authz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "jwt-authz.podLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The ports in the config file and the ports the Deployment, Service and NetworkPolicy declare
must agree, or probes and traffic go to a closed port. Fail the render instead.
*/}}
{{- define "jwt-authz.checkPorts" -}}
{{- $grpc := printf ":%d" (int .Values.ports.grpc) }}
{{- $http := printf ":%d" (int .Values.ports.http) }}
{{- if not (hasSuffix $grpc (toString (.Values.config.grpc_address | default ""))) }}
{{- fail (printf "config.grpc_address %q must listen on ports.grpc (%s)" (toString (.Values.config.grpc_address | default "")) $grpc) }}
{{- end }}
{{- if not (hasSuffix $http (toString (.Values.config.http_address | default ""))) }}
{{- fail (printf "config.http_address %q must listen on ports.http (%s): the probes and /metrics use it" (toString (.Values.config.http_address | default "")) $http) }}
{{- end }}
{{- end }}
