# METADATA
# title: Secret handling
# description: |
#   Keeps credentials out of places that are not Secrets: literal env values
#   under credential-looking names, literal values that look like private
#   keys or tokens (in env, command and args), and ConfigMaps holding them.
#   Optionally, per namespace: Secrets reach containers only as files (no
#   secretKeyRef env, no envFrom.secretRef), pods mount their service
#   account token only when they opt in, and Opaque Secrets are denied where
#   secrets come from Vault only.
#   Reads: spec.{initContainers,containers,ephemeralContainers}[*].{env,
#   envFrom,command,args}, spec.automountServiceAccountToken and the pod's
#   annotations (Pods, pods/ephemeralcontainers, pod templates of workloads);
#   data and binaryData of ConfigMaps; type of Secrets (never their data).
#   Messages name the container, the env var or key and the field, never
#   any part of a value.
#   Settings: policies.secret_handling in config.yaml.
# custom:
#   settings:
#     env_name_patterns: array
#     ignored_env_names: array
#     secrets_as_files_only: array
#     require_automount_opt_in: array
#     vault_only_namespaces: array
#     max_values: integer
#     max_bytes: integer
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
#     - pods/ephemeralcontainers
#     - deployments
#     - replicasets
#     - statefulsets
#     - daemonsets
#     - jobs
#     - cronjobs
#     - replicationcontrollers
#     - podtemplates
#     - configmaps
#     - secrets
package portcullis.secret_handling

import data.portcullis.lib.kubernetes

# Settings ---------------------------------------------------------------

# Read directly (kubernetes.policy_config reads the same): a rule reference
# is cheaper than a function call, and this runs on every request.
settings := s if {
	s := data.portcullis.config.policies.secret_handling
} else := {}

# Defaults are the same as config.yaml, so the policy behaves alike without it.
default_env_name_patterns := [
	`(?i)passw(or)?d`,
	`(?i)secret`,
	`(?i)token`,
	`(?i)api_?key`,
	`(?i)private_?key`,
	`(?i)credential`,
	`(?i)access_?key`,
]

default_ignored_env_names := [`(?i)_(FILE|PATH|DIR|NAME|NAMESPACE|REF|TTL|EXPIRY|SECONDS|LENGTH|SIZE|ENABLED)$`]

env_name_patterns := object.get(settings, "env_name_patterns", default_env_name_patterns)

ignored_env_names := object.get(settings, "ignored_env_names", default_ignored_env_names)

secrets_as_files_only := object.get(settings, "secrets_as_files_only", [])

require_automount_opt_in := object.get(settings, "require_automount_opt_in", [])

vault_only_namespaces := object.get(settings, "vault_only_namespaces", [])

# The annotation a pod sets to "true" to keep its service account token.
opt_in_annotation := "portcullis.dev/automount-token"

# The request's namespace; the CLI may only have the object's own.
namespace := ns if {
	ns := input.request.namespace
	ns != ""
} else := object.get(kubernetes.obj, ["metadata", "namespace"], "")

object_name := object.get(kubernetes.obj, ["metadata", "name"], object.get(kubernetes.obj, ["metadata", "generateName"], ""))

# Credential detectors ---------------------------------------------------

# What a literal value must not look like, whatever its name. Each pattern
# is specific enough that a match is a credential, not a coincidence.
detectors := {
	"a PEM private key": `-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`,
	"an AWS access key ID": `\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b`,
	"a JSON Web Token": `\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`,
	"a GitHub token": `\b(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b`,
	"a Slack token": `\bxox[abeoprs]-[A-Za-z0-9-]{10,}`,
}

# A URL with user:password@ before the host. The password group is checked
# separately so that Kubernetes' own $(VAR) expansion (the password coming
# from another env var) is not a literal credential.
_url_userinfo := `[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*:([^/?#@\s]+)@`

# Something every detector needs to find: one cheap match rules out most
# values before the detectors run one by one. A URL needs an "@" after its
# "://" (every character _url_userinfo allows in between is in
# [^/?#@\s]), so plain URLs, common in env values, stop here too.
_prefilter := `-----BEGIN |AKIA|ASIA|ABIA|ACCA|A3T|eyJ|gh[pousr]_|github_pat_|xox[abeoprs]-|://[^/?#@\s]*@`

# looks_like(value) is the set of descriptions of the credentials value
# looks like (empty for a harmless value).
looks_like(value) := kinds if {
	regex.match(_prefilter, value)
	kinds := {what |
		some what, pattern in detectors
		regex.match(pattern, value)
	} | _url_password(value)
} else := set()

_url_password(value) := {"a URL with an embedded password"} if {
	some m in regex.find_all_string_submatch_n(_url_userinfo, value, -1)
	not regex.match(`^(?:\$\([A-Za-z_][A-Za-z0-9_.-]*\)|\$\{[A-Za-z_][A-Za-z0-9_]*\})$`, m[1])
} else := set()

_describe(kinds) := concat(" and ", sort(kinds))

# Containers ---------------------------------------------------------------

# checked holds the containers this request can change: all of them, or
# only the ephemeral ones through pods/ephemeralcontainers.
checked := kubernetes.containers if {
	kubernetes.is_create_or_update
	kubernetes.subresource == ""
}

checked := [c | some c in kubernetes.containers; c.field == "ephemeralContainers"] if {
	kubernetes.is_create_or_update
	kubernetes.is_pod
	kubernetes.subresource == "ephemeralcontainers"
}

# pod_level is true when the request can change pod-level fields.
pod_level if {
	kubernetes.is_create_or_update
	kubernetes.subresource == ""
	kubernetes.pod
}

spec_path := "spec" if kubernetes.is_pod

spec_path := concat(".", array.concat(kubernetes.template_paths[kubernetes.kind], ["spec"]))

metadata_path := "metadata" if kubernetes.is_pod

metadata_path := concat(".", array.concat(kubernetes.template_paths[kubernetes.kind], ["metadata"]))

container_path(c) := sprintf("%s.%s[%d]", [spec_path, c.field, c.index])

violation(check, container, field, msg) := {"msg": msg, "check": check, "container": container, "field": field}

# object_violation is a violation of the pod or object as a whole.
object_violation(check, field, msg) := {"msg": msg, "check": check, "field": field}

# Literal env values -------------------------------------------------------

# The rules below walk each container's env directly (no intermediate list
# of entries, no function call per variable): a name costs one match
# against the combined name pattern, a value one match against _prefilter;
# looks_like runs only on the few values the prefilter lets through.

# The configured patterns as one alternation each, so a name costs one
# match, not one per pattern. (?:...) keeps each pattern's flags its own.
# Two concats build it without a sprintf per pattern; a list that is not
# all strings falls back to _any_of, which renders it as before.
_any_of(patterns) := concat("|", [sprintf("(?:%s)", [p]) | some p in patterns])

_name_pattern := concat("", ["(?:", concat(")|(?:", env_name_patterns), ")"]) if {
	count(env_name_patterns) > 0
} else := _any_of(env_name_patterns)

_ignored_pattern := concat("", ["(?:", concat(")|(?:", ignored_env_names), ")"]) if {
	count(ignored_env_names) > 0
} else := _any_of(ignored_env_names)

_has_name_patterns if count(env_name_patterns) > 0

_ignored_name(name) if {
	count(ignored_env_names) > 0
	regex.match(_ignored_pattern, name)
}

# A literal value under a credential-like name (and not itself detected as
# a credential, which env_value reports).
deny contains violation("env_name", c.name, field, msg) if {
	_has_name_patterns
	some c in checked
	some i, e in c.container.env
	regex.match(_name_pattern, e.name)
	is_string(e.value)
	e.value != ""
	not _ignored_name(e.name)
	count(looks_like(e.value)) == 0
	field := sprintf("%s.env[%d].value", [container_path(c), i])
	msg := sprintf("container %q env var %q has a credential-like name and a literal value; take it from a Secret (%s)", [c.name, e.name, field])
}

deny contains violation("env_value", c.name, field, msg) if {
	some c in checked
	some i
	value := c.container.env[i].value
	is_string(value)
	regex.match(_prefilter, value)
	kinds := looks_like(value)
	count(kinds) > 0
	field := sprintf("%s.env[%d].value", [container_path(c), i])
	msg := sprintf("container %q env var %q has a literal value that looks like %s; take it from a Secret (%s)", [c.name, c.container.env[i].name, _describe(kinds), field])
}

deny contains violation("argument_value", c.name, field, msg) if {
	some c in checked
	some list in ["command", "args"]
	some i, arg in object.get(c.container, list, [])
	is_string(arg)
	regex.match(_prefilter, arg)
	kinds := looks_like(arg)
	count(kinds) > 0
	field := sprintf("%s.%s[%d]", [container_path(c), list, i])
	msg := sprintf("container %q has a literal %s entry that looks like %s; take it from a Secret (%s)", [c.name, list, _describe(kinds), field])
}

# Secrets as files only ------------------------------------------------------

files_only if kubernetes.namespace_matches(namespace, secrets_as_files_only)

deny contains violation("secret_env", c.name, field, msg) if {
	files_only
	some c in checked
	some i, e in object.get(c.container, "env", [])
	ref := e.valueFrom.secretKeyRef
	field := sprintf("%s.env[%d].valueFrom.secretKeyRef", [container_path(c), i])
	msg := sprintf("container %q env var %q reads key %q of Secret %q; in namespace %q Secrets must be mounted as files (a Secret volume or the Vault agent) (%s)", [
		c.name, e.name, object.get(ref, "key", ""), object.get(ref, "name", ""), namespace, field,
	])
}

deny contains violation("secret_env_from", c.name, field, msg) if {
	files_only
	some c in checked
	some i, source in object.get(c.container, "envFrom", [])
	ref := source.secretRef
	field := sprintf("%s.envFrom[%d].secretRef", [container_path(c), i])
	msg := sprintf("container %q takes env vars from Secret %q; in namespace %q Secrets must be mounted as files (a Secret volume or the Vault agent) (%s)", [
		c.name, object.get(ref, "name", ""), namespace, field,
	])
}

# Service account token ------------------------------------------------------

# The pod's spec.automountServiceAccountToken wins over the ServiceAccount's
# field; left unset, the ServiceAccount decides, and its default is true.
# Admission of a pod cannot see the ServiceAccount, so only an explicit
# false on the pod counts as "not mounted".
deny contains object_violation("automount_token", field, msg) if {
	pod_level
	kubernetes.namespace_matches(namespace, require_automount_opt_in)
	object.get(kubernetes.pod_spec, "automountServiceAccountToken", null) != false
	object.get(kubernetes.pod_annotations, opt_in_annotation, "") != "true"
	field := sprintf("%s.automountServiceAccountToken", [spec_path])
	msg := sprintf("%s %q mounts its service account token: set %s to false (unset means the ServiceAccount's setting, true by default), or opt in with the annotation %s: \"true\" (%s.annotations)", [
		kubernetes.kind, object_name, field, opt_in_annotation, metadata_path,
	])
}

# ConfigMaps -------------------------------------------------------------

# Work per ConfigMap is bounded: a tenant who may create ConfigMaps can send
# a megabyte of credential-looking values, and scanning all of it takes
# seconds (the request deadline, for every such request). At most
# max_values values are scanned, data keys in order then binaryData keys,
# and at most max_bytes characters of them in total (each value is cut to
# what is left); a warning says when the rest was not checked.
default_max_values := 100

default_max_bytes := 65536

max_values := object.get(settings, "max_values", default_max_values)

max_bytes := object.get(settings, "max_bytes", default_max_bytes)

_is_configmap if {
	kubernetes.is_create_or_update
	kubernetes.kind == "ConfigMap"
}

_cm_section(name) := s if {
	s := object.get(kubernetes.obj, name, {})
	is_object(s)
} else := {}

_cm_data := _cm_section("data")

_cm_binary := _cm_section("binaryData")

# Every value as [section, key], in scan order.
_cm_entries := array.concat(
	[["data", k] | some k in sort(object.keys(_cm_data))],
	[["binaryData", k] | some k in sort(object.keys(_cm_binary))],
)

_cm_value(["data", k]) := _cm_data[k]

_cm_value(["binaryData", k]) := _cm_binary[k]

_strlen(v) := count(v) if {
	is_string(v)
} else := 0

_cm_scan := array.slice(_cm_entries, 0, max_values)

_cm_lengths := [_strlen(_cm_value(e)) | some e in _cm_scan]

# The text scanned per value, [section, key, text]: data values as they are,
# binaryData values decoded (base64 is text once decoded), each cut to the
# characters left of max_bytes.
_cm_scanned := [[e[0], e[1], text] |
	some i, e in _cm_scan
	value := _cm_value(e)
	is_string(value)
	room := max_bytes - sum(array.slice(_cm_lengths, 0, i))
	room > 0
	text := _cm_text(e[0], value, room)
]

_cm_text("data", value, room) := substring(value, 0, room)

# A cut at a multiple of 4 keeps the base64 decodable.
_cm_text("binaryData", value, room) := base64.decode(substring(value, 0, floor(room / 4) * 4))

_cm_total_values := count(_cm_entries)

_cm_total_bytes := sum([_strlen(_cm_value(e)) | some e in _cm_entries])

_cm_scanned_bytes := sum([min([n, max([max_bytes - sum(array.slice(_cm_lengths, 0, i)), 0])]) | some i, n in _cm_lengths])

deny contains object_violation("configmap_data", field, msg) if {
	_is_configmap
	some [section, key, text] in _cm_scanned
	kinds := looks_like(text)
	count(kinds) > 0
	field := sprintf("%s[%q]", [section, key])
	msg := sprintf("ConfigMap %q key %q holds a value that looks like %s; store it in a Secret (%s)", [object_name, key, _describe(kinds), field])
}

warn contains object_violation("scan_limit", "data", msg) if {
	_is_configmap
	_cm_scanned_bytes < _cm_total_bytes
	msg := sprintf("ConfigMap %q was not fully checked for credentials: %d of %d values and %d of %d characters scanned (secret_handling max_values, max_bytes)", [
		object_name, count(_cm_scan), _cm_total_values, _cm_scanned_bytes, _cm_total_bytes,
	])
}

# Vault-only namespaces --------------------------------------------------

deny contains object_violation("opaque_secret", "type", msg) if {
	kubernetes.is_create_or_update
	kubernetes.kind == "Secret"
	kubernetes.namespace_matches(namespace, vault_only_namespaces)
	type := object.get(kubernetes.obj, "type", "")
	type in {"", "Opaque"}
	msg := sprintf("Secret %q is of type Opaque (an unset type is Opaque); namespace %q takes its secrets from Vault only", [object_name, namespace])
}
