# METADATA
# title: Vault Agent injection
# description: |
#   Injects HashiCorp Vault Agent into new Pods annotated
#   vault.hashicorp.com/agent-inject: "true", drop-in compatible with the
#   Vault Agent Injector (hashicorp/vault-k8s): the same annotations, the same
#   containers (vault-agent-init, vault-agent), volumes (home-init,
#   home-sidecar, vault-secrets, vault-secrets-custom-N, vault-tls-secrets)
#   and the same agent configuration, passed base64-encoded JSON in the
#   VAULT_CONFIG environment variable.
#
#   Differences from vault-k8s, on purpose:
#   - the agent containers also carry seccompProfile RuntimeDefault, so an
#     injected pod passes the restricted Pod Security Standard;
#   - runAsNonRoot follows the agent's user only (vault-k8s also drops it for
#     group 0, which does not make a process root);
#   - optional native-sidecar mode (config native_sidecar, annotation
#     vault.hashicorp.com/agent-native-sidecar, the name proposed upstream in
#     hashicorp/vault-k8s#659): the long-running agent becomes an init
#     container with restartPolicy: Always, after vault-agent-init, so Jobs
#     complete (needs Kubernetes >= 1.29);
#   - a pod with no service account token mount (automountServiceAccountToken:
#     false, or a manifest checked offline) gets a projected token volume
#     vault-agent-sa-token for the agents instead of being rejected;
#   - secrets are ordered by name (vault-k8s follows map order), so
#     vault-secrets-custom-N numbering is stable;
#   - agent-inject-file-<name> may not contain ".." segments;
#   - a pod that already has a vault-agent container is not injected;
#   - agent-share-process-namespace applies without the init agent too;
#   - annotations under the prefix that vault-k8s v1.7 does not define
#     produce a warning instead of being silently ignored.
#   Every annotation of vault-k8s v1.7's annotations.go is implemented; the
#   table and the measured parity are in policies/vault_agent/README.md.
#
#   Injection is skipped when the pod is already marked
#   vault.hashicorp.com/agent-inject-status: injected (the injection sets it),
#   when it already has a vault-agent or vault-agent-init container, and in
#   kube-system, kube-public, the exempt namespaces and
#   policies.vault_agent.exclude_namespaces.
#
#   Reads: metadata.annotations (vault.hashicorp.com/*, and the legacy
#   container seccomp annotations of the agents), spec.containers[*] (names,
#   volumeMounts, env AWS_* for the aws auth type, the first one's
#   securityContext.runAsUser for agent-run-as-same-user),
#   spec.initContainers[*] (names, volumeMounts), spec.volumes,
#   spec.shareProcessNamespace.
#   Denies (clear message, nothing injected): no role with the kubernetes
#   auth type, a boolean annotation that is not a boolean, an unknown default
#   template, pre-populate-only without pre-populate, a bad UID/GID,
#   resource quantity, duration or number, a JSON patch that is not one or
#   does not apply, agent-run-as-same-user without a UID to copy, a missing
#   service account token volume, no Vault address.
# custom:
#   settings:
#     address: string
#     auth_type: string
#     auth_path: string
#     vault_namespace: string
#     image: string
#     log_level: string
#     log_format: string
#     default_template: string
#     exit_on_retry_failure: boolean
#     revoke_on_shutdown: boolean
#     revoke_grace: integer
#     run_as_user: integer
#     run_as_group: integer
#     set_security_context: boolean
#     resources:
#       limits: object
#       requests: object
#     native_sidecar: boolean
#     exclude_namespaces: array
#     ca_cert_bytes: string
#     proxy_address: string
#     auth_min_backoff: string
#     auth_max_backoff: string
#     static_secret_render_interval: string
#     max_connections_per_host: integer
#     lease_renewal_threshold: number
#     disable_idle_connections: string
#     disable_keep_alives: string
#     run_as_same_user: boolean
#   kind: mutating
#   enforcement: deny
#   resources:
#     - pods
package portcullis.vault_agent

import data.portcullis.lib.kubernetes

# --- configuration -------------------------------------------------------

defaults := {
	"address": "https://vault.vault.svc:8200",
	"auth_type": "kubernetes",
	"auth_path": "auth/kubernetes",
	"vault_namespace": "",
	"image": "hashicorp/vault:2.0.4",
	"log_level": "info",
	"log_format": "standard",
	"default_template": "map",
	"exit_on_retry_failure": true,
	"revoke_on_shutdown": false,
	"revoke_grace": 5,
	"run_as_user": 100,
	"run_as_group": 1000,
	"set_security_context": true,
	"resources": {
		"limits": {"cpu": "500m", "memory": "128Mi"},
		"requests": {"cpu": "250m", "memory": "64Mi"},
	},
	"native_sidecar": false,
	"exclude_namespaces": [],
	"ca_cert_bytes": "",
	"proxy_address": "",
	"auth_min_backoff": "",
	"auth_max_backoff": "",
	"static_secret_render_interval": "",
	"max_connections_per_host": 0,
	"lease_renewal_threshold": 0,
	"disable_idle_connections": "",
	"disable_keep_alives": "",
	"run_as_same_user": false,
}

cfg := object.union(defaults, kubernetes.policy_config("vault_agent"))

# Never injected here, whatever the configuration says.
always_excluded := ["kube-system", "kube-public"]

exempt_namespaces := ns if {
	ns := data.portcullis.config.exempt_namespaces
} else := []

# --- annotations ---------------------------------------------------------

prefix := "vault.hashicorp.com/"

status_key := "vault.hashicorp.com/agent-inject-status"

ann := kubernetes.pod_annotations

key(name) := concat("", [prefix, name])

# va holds the vault.hashicorp.com/ annotations by their short name
# ("role"), built once so that the many lookups below are one object.get
# each, without building the full key every time.
va := {name: value |
	some k, value in ann
	startswith(k, prefix)
	name := substring(k, count(prefix), -1)
}

has(name) if _ = va[name]

# Lookups below are written object.get(va, NAME, DEFAULT) (and
# object.get(parsed_flags, ...) for booleans) rather than through a helper
# function: a Rego function call costs several microseconds, and there are
# dozens per request.

true_strings := {"1", "t", "T", "TRUE", "true", "True"}

false_strings := {"0", "f", "F", "FALSE", "false", "False"}

# parsed_flags: every vault annotation whose value parses as a boolean the
# way vault-k8s parses them (strconv.ParseBool), parsed.
parsed_flags := {name: parsed |
	some name, value in va
	value in bool_strings
	parsed := value in true_strings
}

bool_strings := true_strings | false_strings

bool_annotations := {
	"agent-inject", "agent-pre-populate", "agent-pre-populate-only", "agent-init-first",
	"agent-revoke-on-shutdown", "tls-skip-verify", "preserve-secret-case", "agent-inject-token",
	"agent-set-security-context", "agent-native-sidecar", "template-config-exit-on-retry-failure",
	"agent-cache-enable", "agent-cache-exit-on-err", "agent-enable-quit", "agent-auto-auth-exit-on-err",
	"agent-run-as-same-user", "agent-share-process-namespace",
}

bool_annotation_prefixes := {"preserve-secret-case-", "error-on-missing-key-"}

# Annotations of vault-k8s this policy does not implement: warned about.
# (None left: every annotation of vault-k8s v1.7's annotations.go is
# implemented; the set stays for what a later vault-k8s adds.)
unsupported_annotations := {"agent-metrics-listener-port"}

# --- when to inject ------------------------------------------------------

excluded_namespace if kubernetes.namespace_matches(
	object.get(input.request, "namespace", ""),
	array.concat(array.concat(always_excluded, exempt_namespaces), cfg.exclude_namespaces),
)

agent_container_names := {"vault-agent", "vault-agent-init"}

# already_injected is true when the injection (ours or vault-k8s's) already
# ran: reinvocation and repeated evaluation then change nothing.
already_injected if ann[status_key] == "injected"

already_injected if {
	some entry in kubernetes.containers
	entry.name in agent_container_names
}

# candidate is true for a new Pod outside the excluded namespaces.
candidate if {
	kubernetes.is_pod
	kubernetes.operation == "CREATE"
	object.get(input.request, "subResource", "") == ""
	not excluded_namespace
}

# active is true when the pod asks for injection and has not had it.
active if {
	candidate
	object.get(parsed_flags, "agent-inject", false) == true
	not already_injected
}

# --- settings from annotations and config ---------------------------------

pre_populate := object.get(parsed_flags, "agent-pre-populate", true)

pre_populate_only := object.get(parsed_flags, "agent-pre-populate-only", false)

init_first := object.get(parsed_flags, "agent-init-first", false)

native_sidecar := object.get(parsed_flags, "agent-native-sidecar", cfg.native_sidecar)

# The long-running agent: absent with pre-populate-only.
run_sidecar if not pre_populate_only

address := object.get(va, "service", cfg.address)

auth_type := object.get(va, "auth-type", cfg.auth_type)

auth_path := object.get(va, "auth-path", cfg.auth_path)

role := object.get(va, "role", "")

image := object.get(va, "agent-image", cfg.image)

secret_volume_path := object.get(va, "secret-volume-path", "/vault/secrets")

default_template := lower(object.get(va, "agent-inject-default-template", cfg.default_template))

# agent-configmap: the agents read config-init.hcl / config.hcl from this
# ConfigMap instead of a generated VAULT_CONFIG.
config_map := object.get(va, "agent-configmap", "")

extra_secret := object.get(va, "agent-extra-secret", "")

copy_mounts_from := object.get(va, "agent-copy-volume-mounts", "")

run_as_user_raw := object.get(va, "agent-run-as-user", as_string(cfg.run_as_user))

run_as_group_raw := object.get(va, "agent-run-as-group", as_string(cfg.run_as_group))

uid_pattern := `^[0-9]{1,10}$`

run_as_same_user := object.get(parsed_flags, "agent-run-as-same-user", cfg.run_as_same_user)

# The first app container's UID, for agent-run-as-same-user.
first_container_uid := object.get(kubernetes.pod_spec, ["containers", 0, "securityContext", "runAsUser"], null)

run_as_user := first_container_uid if {
	run_as_same_user
	is_number(first_container_uid)
	first_container_uid > 0
} else := to_number(run_as_user_raw) if {
	not run_as_same_user
	regex.match(uid_pattern, run_as_user_raw)
}

run_as_group := to_number(run_as_group_raw) if regex.match(uid_pattern, run_as_group_raw)

# as_string renders a config number the way an annotation would carry it.
as_string(x) := x if is_string(x)

as_string(x) := format_int(x, 10) if is_number(x)

# vault-k8s turns the security context on when a UID or GID is given.
set_security_context := object.get(parsed_flags, "agent-set-security-context", sc_default)

sc_default if {
	some name in ["agent-run-as-user", "agent-run-as-group", "agent-run-as-same-user"]
	has(name)
} else := cfg.set_security_context

revoke_on_shutdown := object.get(parsed_flags, "agent-revoke-on-shutdown", cfg.revoke_on_shutdown)

revoke_grace := object.get(va, "agent-revoke-grace", as_string(cfg.revoke_grace))

# Agent cache (vault-k8s's rules): persisted, in both agents, when the init
# agent runs before a sidecar; else only the sidecar gets a listener.
cache_enable := object.get(parsed_flags, "agent-cache-enable", false)

cache_persist if {
	cache_enable
	pre_populate
	not pre_populate_only
}

cache_listener_port := object.get(va, "agent-cache-listener-port", "8200")

cache_use_auto_auth_token := object.get(va, "agent-cache-use-auto-auth-token", "true")

enable_quit := object.get(parsed_flags, "agent-enable-quit", false)

# --- secrets ---------------------------------------------------------------

secret_prefixes := ["agent-inject-secret-", "agent-inject-template-file-", "agent-inject-template-"]

# raw_secret_names: everything after a secret, template-file or template
# prefix whose annotation is not blank (vault-k8s's rule).
raw_secret_names contains raw if {
	some name, value in va
	startswith(name, "agent-inject-")
	trim_space(value) != ""
	some p in secret_prefixes
	startswith(name, p)
	not shadowed(p, name)
	raw := substring(name, count(p), -1)
	raw != ""
}

# agent-inject-template-file-x names secret x, not secret "file-x".
shadowed("agent-inject-template-", name) if startswith(name, "agent-inject-template-file-")

global_preserve_case := object.get(parsed_flags, "preserve-secret-case", false)

# secret_name: the file name, lower-cased unless preserve-secret-case(-<raw>).
secret_name(raw, true) := raw

secret_name(raw, false) := lower(raw)

# Per-secret settings are annotations named <setting>-<raw name>, looked up
# inline (see the note on object.get above).
secrets := [s |
	some raw in sort(raw_secret_names)
	s := {
		"raw": raw,
		"name": secret_name(raw, object.get(parsed_flags, concat("-", ["preserve-secret-case", raw]), global_preserve_case)),
		"path": object.get(va, concat("-", ["agent-inject-secret", raw]), ""),
		"template": object.get(va, concat("-", ["agent-inject-template", raw]), ""),
		"template_file": object.get(va, concat("-", ["agent-inject-template-file", raw]), ""),
		"mount_path": object.get(va, concat("-", ["secret-volume-path", raw]), secret_volume_path),
		"command": object.get(va, concat("-", ["agent-inject-command", raw]), ""),
		"file": object.get(va, concat("-", ["agent-inject-file", raw]), ""),
		"perms": object.get(va, concat("-", ["agent-inject-perms", raw]), ""),
		"left_delimiter": object.get(va, concat("-", ["agent-template-left-delim", raw]), ""),
		"right_delimiter": object.get(va, concat("-", ["agent-template-right-delim", raw]), ""),
		"error_on_missing_key": object.get(parsed_flags, concat("-", ["error-on-missing-key", raw]), false),
	}
]

map_template := "{{ with secret \"%s\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}"

json_template := "{{ with secret \"%s\" }}{{ .Data | toJSON }}\n{{ end }}"

default_contents(path) := sprintf(map_template, [path]) if default_template == "map"

default_contents(path) := sprintf(json_template, [path]) if default_template == "json"

# contents: the custom template, else (without a template file) the default.
template_source(s) := {"contents": s.template} if s.template != ""

template_source(s) := {"source": s.template_file} if {
	s.template == ""
	s.template_file != ""
}

template_source(s) := {"contents": default_contents(s.path)} if {
	s.template == ""
	s.template_file == ""
}

# join_path joins like Go's filepath.Join for the paths allowed here (no ".."
# segments): empty and "." segments and doubled slashes go away.
join_path(base, rel) := concat("", [lead, concat("/", parts)]) if {
	lead := leading_slash(base)
	parts := [p |
		some p in array.concat(split(base, "/"), split(rel, "/"))
		not p in {"", "."}
	]
}

leading_slash(p) := "/" if startswith(p, "/")

leading_slash(p) := "" if not startswith(p, "/")

destination(s) := concat("/", [s.mount_path, s.name]) if s.file == ""

destination(s) := join_path(s.mount_path, s.file) if s.file != ""

# or_default: the value, or the default when it is "".
or_default(v, _) := v if v != ""

or_default("", d) := d

templates := [object.union(
	object.union(
		{
			"destination": destination(s),
			"left_delimiter": or_default(s.left_delimiter, "{{"),
			"right_delimiter": or_default(s.right_delimiter, "}}"),
		},
		template_source(s),
	),
	compact({"command": s.command, "perms": s.perms, "error_on_missing_key": s.error_on_missing_key}),
) |
	some s in secrets
]

# Mount paths other than secret-volume-path, each its own volume, in order
# of first use.
custom_mount_paths := [s.mount_path |
	some i, s in secrets
	s.mount_path != secret_volume_path
	not used_before(i, s.mount_path)
]

used_before(i, path) if {
	some j, other in secrets
	j < i
	other.mount_path == path
}

# The mounts of the rendered secrets, in the agents and the app containers.
secret_mounts := array.concat(
	[{"name": "vault-secrets", "mountPath": secret_volume_path}],
	[{"name": sprintf("vault-secrets-custom-%d", [i]), "mountPath": p} | some i, p in custom_mount_paths],
)

# --- service account token --------------------------------------------------

sa_volume_name := object.get(va, "agent-service-account-token-volume-name", "")

default_sa_mount_path := "/var/run/secrets/vault.hashicorp.com/serviceaccount"

app_mounts := [m |
	some c in object.get(kubernetes.pod_spec, "containers", [])
	some m in object.get(c, "volumeMounts", [])
]

pod_volumes := object.get(kubernetes.pod_spec, "volumes", [])

# projected_token_path is the token file in a projected service account
# token volume, "" when the volume is not one.
projected_token_path(volume_name) := paths[0] if {
	paths := [src.serviceAccountToken.path |
		some v in pod_volumes
		v.name == volume_name
		some src in object.get(v, ["projected", "sources"], [])
		object.get(src, ["serviceAccountToken", "path"], "") != ""
	]
	count(paths) > 0
} else := ""

# sa_token: where the agents find the pod's service account token:
# {"name", "mount_path", "token_path", "volume" (only when we add it)}.
sa_token := t if {
	sa_volume_name == ""
	found := [m | some m in app_mounts; contains(m.mountPath, "serviceaccount")]
	count(found) > 0
	t := {"name": found[0].name, "mount_path": found[0].mountPath, "token_path": "token"}
} else := t if {
	sa_volume_name == ""
	t := {
		"name": "vault-agent-sa-token",
		"mount_path": default_sa_mount_path,
		"token_path": "token",
		"volume": {"name": "vault-agent-sa-token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}},
	}
} else := t if {
	found := [m | some m in app_mounts; m.name == sa_volume_name]
	count(found) > 0
	t := {"name": sa_volume_name, "mount_path": found[0].mountPath, "token_path": projected_token_path(sa_volume_name)}
} else := t if {
	some v in pod_volumes
	v.name == sa_volume_name
	t := {"name": sa_volume_name, "mount_path": default_sa_mount_path, "token_path": projected_token_path(sa_volume_name)}
}

sa_mount := {"name": sa_token.name, "mountPath": sa_token.mount_path, "readOnly": true}

# AWS IAM auth (IRSA): the app's EKS web identity token mount goes to the
# agents too, and the app's AWS_* settings become the agents' env.
aws_mounts := [{"name": found[0].name, "mountPath": found[0].mountPath, "readOnly": true}] if {
	auth_type == "aws"
	found := [m | some m in app_mounts; contains(m.mountPath, "eks.amazonaws.com")]
	count(found) > 0
} else := []

aws_env_names := ["AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]

# The first value of each AWS_* variable over the app containers, by name
# (vault-k8s takes the first too, in Go map order).
aws_env := array.concat(
	[{"name": n, "value": values[0]} |
		some n in aws_env_names
		values := [object.get(e, "value", "") |
			some c in object.get(kubernetes.pod_spec, "containers", [])
			some e in object.get(c, "env", [])
			e.name == n
		]
		count(values) > 0
	],
	[{"name": "AWS_REGION", "value": r} | r := auth_config.region; is_string(r)],
) if auth_type == "aws"

else := []

# --- agent configuration (VAULT_CONFIG) ---------------------------------------

# compact drops empty values, like Go's omitempty.
compact(obj) := {k: v | some k, v in obj; not empty(v)}

empty(v) if v in {"", false, null, {}, [], 0}

auth_config_prefix := "auth-config-"

auth_config := object.union(
	object.union(
		{"token_path": concat("/", [sa_token.mount_path, sa_token.token_path])},
		{param: value |
			some name, value in va
			startswith(name, auth_config_prefix)
			param := replace(substring(name, count(auth_config_prefix), -1), "-", "_")
		},
	),
	compact({"role": role}),
)

sinks := array.concat(
	[{"type": "file", "config": {"path": "/home/vault/.vault-token"}}],
	[{"type": "file", "config": {"path": join_path(secret_volume_path, "token")}} | object.get(parsed_flags, "agent-inject-token", false)],
)

vault_stanza := object.union({"address": address}, compact({
	"ca_cert": object.get(va, "ca-cert", ""),
	"ca_path": object.get(va, "ca-key", ""),
	"client_cert": object.get(va, "client-cert", ""),
	"client_key": object.get(va, "client-key", ""),
	"tls_server_name": object.get(va, "tls-server-name", ""),
	"tls_skip_verify": object.get(parsed_flags, "tls-skip-verify", false),
}))

# split_list splits a comma-separated annotation like vault-k8s (no
# trimming), [] for "".
split_list("") := []

split_list(s) := split(s, ",") if s != ""

int_pattern := `^[+-]?[0-9]+$`

float_pattern := `^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`

# Go's time.ParseDuration syntax.
duration_pattern := `^[+-]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

max_connections_raw := object.get(va, "template-max-connections-per-host", as_string(cfg.max_connections_per_host))

lease_renewal_raw := object.get(va, "template-lease-renewal-threshold", sprintf("%v", [cfg.lease_renewal_threshold]))

number_or_zero(raw, pattern) := to_number(raw) if regex.match(pattern, raw)

else := 0

template_config := compact({
	"static_secret_render_interval": object.get(va, "template-static-secret-render-interval", cfg.static_secret_render_interval),
	"max_connections_per_host": number_or_zero(max_connections_raw, int_pattern),
	"lease_renewal_threshold": number_or_zero(lease_renewal_raw, float_pattern),
})

# Telemetry: agent-telemetry-<param> (dashes become underscores), each value
# read as JSON when it is JSON, kept only for the parameters Vault Agent's
# telemetry stanza has (vault-k8s decodes them into its Telemetry struct,
# which drops the others; a value of the wrong type drops the stanza).
telemetry_params := {
	"usage_gauge_period": "string", "maximum_gauge_cardinality": "number", "disable_hostname": "boolean",
	"enable_hostname_label": "boolean", "lease_metrics_epsilon": "string", "num_lease_metrics_buckets": "number",
	"add_lease_metrics_namespace_labels": "boolean", "filter_default": "boolean", "prefix_filter": "array",
	"statsite_address": "string", "statsd_address": "string", "circonus_api_token": "string",
	"circonus_api_app": "string", "circonus_api_url": "string", "circonus_submission_interval": "string",
	"circonus_submission_url": "string", "circonus_check_id": "string",
	"circonus_check_force_metric_activation": "boolean", "circonus_check_instance_id": "string",
	"circonus_check_search_tag": "string", "circonus_check_display_name": "string",
	"circonus_check_tags": "string", "circonus_broker_id": "string", "circonus_broker_select_tag": "string",
	"dogstatsd_addr": "string", "dogstatsd_tags": "array", "prometheus_retention_time": "string",
	"stackdriver_project_id": "string", "stackdriver_location": "string", "stackdriver_namespace": "string",
	"stackdriver_debug_logs": "boolean",
}

telemetry_prefix := "agent-telemetry-"

telemetry_values := {param: value |
	some name, raw in va
	startswith(name, telemetry_prefix)
	param := replace(substring(name, count(telemetry_prefix), -1), "-", "_")
	value := json_or_string(raw)
}

json_or_string(raw) := json.unmarshal(raw) if json.is_valid(raw)

else := raw

telemetry_wrong_type if {
	some param, value in telemetry_values
	want := telemetry_params[param]
	type_name(value) != want
}

telemetry := compact({param: value |
	some param, value in telemetry_values
	telemetry_params[param]
}) if not telemetry_wrong_type

else := {}

listener(with_api) := [object.union(
	{"type": "tcp", "address": concat(":", ["127.0.0.1", cache_listener_port]), "tls_disable": true},
	{"agent_api": {"enable_quit": true} | with_api},
)]

# persisted_cache: the listener and cache stanzas of both agents when the
# cache is persisted.
persisted_cache := {
	"listener": listener(enable_quit),
	"cache": object.union(compact({"use_auto_auth_token": cache_use_auto_auth_token}), {"persist": compact({
		"type": "kubernetes",
		"path": "/vault/agent-cache",
		"exit_on_err": object.get(parsed_flags, "agent-cache-exit-on-err", false),
	})}),
}

# quit_only: agent-enable-quit without a cache still opens a listener.
quit_only := {"listener": listener(true), "cache": {}}

# The configuration shared by both agents (rules, so evaluated once);
# agent_config adds what differs.
shared_config := object.union(
	{
		"auto_auth": {
			"method": object.union({"type": auth_type}, compact({
				"mount_path": auth_path,
				"namespace": object.get(va, "namespace", cfg.vault_namespace),
				"config": auth_config,
				"min_backoff": object.get(va, "auth-min-backoff", cfg.auth_min_backoff),
				"max_backoff": object.get(va, "auth-max-backoff", cfg.auth_max_backoff),
				"exit_on_err": object.get(parsed_flags, "agent-auto-auth-exit-on-err", false),
			})),
			"sink": sinks,
		},
		"pid_file": "/home/vault/.pid",
		"vault": vault_stanza,
		"template_config": object.union(
			{"exit_on_retry_failure": object.get(parsed_flags, "template-config-exit-on-retry-failure", cfg.exit_on_retry_failure)},
			template_config,
		),
	},
	compact({
		"template": templates,
		"telemetry": telemetry,
		"disable_idle_connections": split_list(object.get(va, "agent-disable-idle-connections", cfg.disable_idle_connections)),
		"disable_keep_alives": split_list(object.get(va, "agent-disable-keep-alives", cfg.disable_keep_alives)),
	}),
)

init_config := object.union(object.union(shared_config, {"exit_after_auth": true}), init_cache_config)

sidecar_config := object.union(object.union(shared_config, {"exit_after_auth": false}), sidecar_cache_config)

# The sidecar gets a plain cache listener when caching is on without
# persistence; the init agent only a persisted cache.
sidecar_cache_config := persisted_cache if {
	cache_persist
} else := {"listener": listener(enable_quit), "cache": compact({"use_auto_auth_token": cache_use_auto_auth_token})} if {
	cache_enable
	not pre_populate_only
} else := quit_only if {
	enable_quit
} else := {}

init_cache_config := persisted_cache if {
	cache_persist
} else := quit_only if {
	enable_quit
} else := {}

# --- containers ----------------------------------------------------------------

field_env(name, path) := {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

base_env := [
	field_env("NAMESPACE", "metadata.namespace"),
	field_env("HOST_IP", "status.hostIP"),
	field_env("POD_IP", "status.podIP"),
]

plain_env := [{"name": name, "value": value} |
	some [name, value] in [
		["GOMAXPROCS", object.get(va, "go-max-procs", "")],
		["VAULT_CLIENT_TIMEOUT", object.get(va, "client-timeout", "")],
		["VAULT_MAX_RETRIES", object.get(va, "client-max-retries", "")],
		["VAULT_LOG_LEVEL", object.get(va, "log-level", cfg.log_level)],
		["VAULT_LOG_FORMAT", object.get(va, "log-format", cfg.log_format)],
		["HTTPS_PROXY", object.get(va, "proxy-address", cfg.proxy_address)],
	]
	value != ""
]

# With agent-configmap the agent reads its own config file, so the Vault
# client settings go to the environment instead.
config_map_env := [{"name": name, "value": value} |
	some [name, value] in [
		["VAULT_ADDR", address],
		["VAULT_CACERT", object.get(va, "ca-cert", "")],
		["VAULT_CAPATH", object.get(va, "ca-key", "")],
		["VAULT_CLIENT_CERT", object.get(va, "client-cert", "")],
		["VAULT_CLIENT_KEY", object.get(va, "client-key", "")],
		["VAULT_SKIP_VERIFY", format_bool(object.get(parsed_flags, "tls-skip-verify", false))],
		["VAULT_TLS_SERVER_NAME", object.get(va, "tls-server-name", "")],
	]
	value != ""
]

format_bool(true) := "true"

format_bool(false) := "false"

# The injector-wide CA certificate, PEM or base64 of PEM (vault-k8s decodes
# it when it is valid base64).
ca_cert_bytes := base64.decode(cfg.ca_cert_bytes) if base64.is_valid(cfg.ca_cert_bytes)

else := cfg.ca_cert_bytes

ca_env := [{"name": "VAULT_CACERT_BYTES", "value": ca_cert_bytes} | ca_cert_bytes != ""]

config_env(agent_config) := [{"name": "VAULT_CONFIG", "value": base64.encode(json.marshal(agent_config))}] if config_map == ""

else := config_map_env

env(agent_config) := array.concat(
	array.concat(array.concat(base_env, plain_env), config_env(agent_config)),
	array.concat(ca_env, aws_env),
)

resource_annotations := [
	["limits", "cpu", "agent-limits-cpu"],
	["limits", "memory", "agent-limits-mem"],
	["limits", "ephemeral-storage", "agent-limits-ephemeral"],
	["requests", "cpu", "agent-requests-cpu"],
	["requests", "memory", "agent-requests-mem"],
	["requests", "ephemeral-storage", "agent-requests-ephemeral"],
]

resource_value(kind, res, name) := object.get(va, name, object.get(cfg.resources, [kind, res], ""))

resources := compact({kind: values |
	some kind in ["limits", "requests"]
	values := {res: v |
		some [k, res, name] in resource_annotations
		k == kind
		v := resource_value(kind, res, name)
		v != ""
	}
})

# seccompProfile is left to the container annotation when the pod carries the
# legacy one for this agent (the API rejects a contradicting field).
agent_security_context(name) := object.union(
	{
		"allowPrivilegeEscalation": false,
		"capabilities": {"drop": ["ALL"]},
		"readOnlyRootFilesystem": true,
		"runAsGroup": run_as_group,
		"runAsNonRoot": run_as_user != 0,
		"runAsUser": run_as_user,
	},
	{"seccompProfile": {"type": "RuntimeDefault"} | not ann[concat("", ["container.seccomp.security.alpha.kubernetes.io/", name])]},
)

default_args := ["echo ${VAULT_CONFIG?} | base64 -d > /home/vault/config.json && vault agent -config=/home/vault/config.json"]

agent_args(file) := default_args if config_map == ""

else := [sprintf("touch /home/vault/.vault-token && vault agent -config=/vault/configs/%s", [file])]

tls_secret := object.get(va, "tls-secret", "")

# Mounts after the secrets, in vault-k8s's order.
extra_mounts := array.concat(
	array.concat(
		[{"name": "extra-secrets", "mountPath": "/vault/custom", "readOnly": true} | extra_secret != ""],
		copied_mounts,
	),
	array.concat(
		array.concat(
			[{"name": "vault-config", "mountPath": "/vault/configs", "readOnly": true} | config_map != ""],
			[{"name": "vault-tls-secrets", "mountPath": "/vault/tls", "readOnly": true} | tls_secret != ""],
		),
		[{"name": "vault-agent-cache", "mountPath": "/vault/agent-cache"} | cache_persist],
	),
)

# agent-copy-volume-mounts: the named container's mounts (containers, then
# init containers), except service account token mounts.
copied_mounts := [m |
	copy_mounts_from != ""
	some field in ["containers", "initContainers"]
	some c in object.get(kubernetes.pod_spec, field, [])
	c.name == copy_mounts_from
	some m in object.get(c, "volumeMounts", [])
	not contains(lower(m.mountPath), "serviceaccount")
]

# container builds an agent container and applies its JSON patch annotation
# (RFC 6902, with OPA's json.patch) to it, as vault-k8s does.
container(name, agent_config, mounts, file, patch_annotation) := patched if {
	built := object.union(
		compact({
			"name": name,
			"image": image,
			"command": ["/bin/sh", "-ec"],
			"args": agent_args(file),
			"env": env(agent_config),
			"resources": resources,
			"volumeMounts": mounts,
		}),
		{"securityContext": agent_security_context(name) | set_security_context},
	)
	patched := apply_json_patch(built, object.get(va, patch_annotation, ""))
}

apply_json_patch(c, "") := c

apply_json_patch(c, patch) := json.patch(c, ops) if {
	valid_patch(patch)
	ops := json.unmarshal(patch)
	patch_applies(c, ops)
}

# patch_applies is true when every operation finds what it needs in the
# container (built-in errors are strict, so json.patch must never be called
# with a patch that does not apply): the path of a remove, replace or test
# and the from of a move or copy exist (a test's value equal), the parent of
# an add (or of a move or copy target) exists, and an array index is within
# bounds. Paths created by earlier operations count as existing. What an
# earlier remove or move changed is not simulated: a later operation under
# the same parent (or on a tested value an earlier operation touched) makes
# the patch refused as one that cannot be checked. A refused patch is a
# denial with a message, never an evaluation error.
patch_applies(doc, ops) if {
	every i, op in ops {
		op_applies(doc, op, {pointer(prev.path) | some j, prev in ops; j < i; prev.op in {"add", "copy", "move"}})
		not after_removal(op, array.slice(ops, 0, i))
		not tests_touched(op, array.slice(ops, 0, i))
	}
}

# The parents of what earlier operations removed or moved away.
after_removal(op, earlier) if {
	some prev in earlier
	gone := removed_pointer(prev)
	parent := array.slice(gone, 0, count(gone) - 1)
	some steps in op_pointers(op)
	is_prefix(parent, steps)
}

removed_pointer(prev) := pointer(prev.path) if prev.op == "remove"

removed_pointer(prev) := pointer(prev.from) if prev.op == "move"

op_pointers(op) := [pointer(op.path)] if not op.from

op_pointers(op) := [pointer(op.path), pointer(op.from)] if op.from

tests_touched(op, earlier) if {
	op.op == "test"
	some prev in earlier
	prev.op != "test"
	is_prefix(pointer(prev.path), pointer(op.path))
}

tests_touched(op, earlier) if {
	op.op == "test"
	some prev in earlier
	prev.op != "test"
	is_prefix(pointer(op.path), pointer(prev.path))
}

is_prefix(prefix, steps) if {
	count(prefix) <= count(steps)
	array.slice(steps, 0, count(prefix)) == prefix
}

has_value(op) if "value" in object.keys(op)

op_applies(doc, op, added) if {
	op.op == "remove"
	count(pointer(op.path)) > 0
	present(doc, pointer(op.path), added)
}

op_applies(doc, op, added) if {
	op.op == "replace"
	has_value(op)
	present(doc, pointer(op.path), added)
}

op_applies(doc, op, _) if {
	op.op == "test"
	has_value(op)
	steps := pointer(op.path)
	object.get(doc, steps, absent_marker) == op.value
}

op_applies(doc, op, added) if {
	op.op == "add"
	has_value(op)
	parent_accepts(doc, pointer(op.path), added)
}

op_applies(doc, op, added) if {
	op.op in {"move", "copy"}
	is_string(op.from)
	present(doc, pointer(op.from), added)
	parent_accepts(doc, pointer(op.path), added)
	not moved_into_itself(op)
}

moved_into_itself(op) if {
	op.op == "move"
	is_prefix(pointer(op.from), pointer(op.path))
}

# pointer splits an RFC 6901 JSON pointer into its steps, numbers for
# array indices.
pointer("") := []

pointer(p) := [step(unescape(s)) | some s in array.slice(parts, 1, count(parts))] if {
	startswith(p, "/")
	parts := split(p, "/")
}

unescape(s) := replace(replace(s, "~1", "/"), "~0", "~")

step(s) := to_number(s) if regex.match(`^(0|[1-9][0-9]*)$`, s)

else := s

present(_, steps, _) if count(steps) == 0

present(doc, steps, _) if {
	count(steps) > 0
	object.get(doc, steps, absent_marker) != absent_marker
}

present(_, steps, added) if steps in added

absent_marker := "\u0000absent"

parent_accepts(doc, steps, added) if {
	count(steps) > 0
	parent_steps := array.slice(steps, 0, count(steps) - 1)
	present(doc, parent_steps, added)
	last := steps[count(steps) - 1]
	index_fits(object.get(doc, parent_steps, null), last)
}

index_fits(parent, "-") if is_array(parent)

index_fits(parent, i) if {
	is_array(parent)
	is_number(i)
	i <= count(parent)
}

index_fits(parent, _) if is_object(parent)

# A parent an earlier operation created: its shape is not known here.
index_fits(null, _)

init_container := container(
	"vault-agent-init",
	init_config,
	array.concat(array.concat(array.concat([{"name": "home-init", "mountPath": "/home/vault"}, sa_mount], aws_mounts), secret_mounts), extra_mounts),
	"config-init.hcl",
	"agent-init-json-patch",
)

sidecar_mounts := array.concat(array.concat(array.concat([sa_mount, {"name": "home-sidecar", "mountPath": "/home/vault"}], aws_mounts), secret_mounts), extra_mounts)

revoke_flags := array.concat(
	array.concat([sprintf("-address=%s", [address])], [sprintf("-%s=%s", [flag_name, value]) |
		some [flag_name, value] in [
			["ca-cert", object.get(va, "ca-cert", "")],
			["client-cert", object.get(va, "client-cert", "")],
			["client-key", object.get(va, "client-key", "")],
		]
		value != ""
	]),
	["-self"],
)

lifecycle := {"preStop": {"exec": {"command": [
	"/bin/sh", "-c",
	sprintf("/bin/sleep %s && /bin/vault token revoke %s", [revoke_grace, concat(" ", revoke_flags)]),
]}}}

sidecar := object.union(
	object.union(
		container("vault-agent", sidecar_config, sidecar_mounts, "config.hcl", "agent-json-patch"),
		{"lifecycle": lifecycle | revoke_on_shutdown},
	),
	{"restartPolicy": "Always" | native_sidecar},
)

# The agents that go to initContainers and to containers.
init_agents := array.concat(
	[init_container | pre_populate],
	[sidecar | run_sidecar; native_sidecar],
)

sidecar_agents := [sidecar | run_sidecar; not native_sidecar]

memory_volume(name) := {"name": name, "emptyDir": {"medium": "Memory"}}

volumes := array.concat(
	array.concat(
		array.concat(
			[memory_volume("home-init") | pre_populate],
			[memory_volume("home-sidecar") | run_sidecar],
		),
		[sa_token.volume | sa_token.volume],
	),
	array.concat(
		array.concat(
			[memory_volume(m.name) | some m in secret_mounts],
			array.concat(
				[{"name": "vault-config", "configMap": {"name": config_map}} | config_map != ""],
				[{"name": "extra-secrets", "secret": {"secretName": extra_secret}} | extra_secret != ""],
			),
		),
		array.concat(
			[{"name": "vault-tls-secrets", "secret": {"secretName": tls_secret}} | tls_secret != ""],
			[memory_volume("vault-agent-cache") | cache_persist],
		),
	),
)

# App containers that get the secrets: agent-inject-containers (names
# matched literally, as vault-k8s does: "a, b" names "a" and " b"), else all.
selected_names := {n | some n in split(va["agent-inject-containers"], ",")} if {
	has("agent-inject-containers")
} else := {c.name | some c in object.get(kubernetes.pod_spec, "containers", [])}

# agent-share-process-namespace sets spec.shareProcessNamespace.
share_process_namespace := parsed_flags["agent-share-process-namespace"]

# --- edits ---------------------------------------------------------------------

inject if {
	active
	count(deny) == 0
}

mutate contains {"op": "set", "path": ["metadata", "annotations", status_key], "value": "injected"} if inject

mutate contains {"op": "append", "path": ["spec", "volumes"], "value": volumes} if inject

mutate contains {"op": "append", "path": ["spec", "containers", {"name": c.name}, "volumeMounts"], "value": secret_mounts} if {
	inject
	some c in kubernetes.pod_spec.containers
	c.name in selected_names
}

# Existing init containers see the secrets when an agent runs before or
# beside them.
mutate contains {"op": "append", "path": ["spec", "initContainers", {"name": c.name}, "volumeMounts"], "value": secret_mounts} if {
	inject
	count(init_agents) > 0
	some c in object.get(kubernetes.pod_spec, "initContainers", [])
}

mutate contains {"op": "prepend", "path": ["spec", "initContainers"], "value": init_agents} if {
	inject
	init_first
	count(init_agents) > 0
}

mutate contains {"op": "append", "path": ["spec", "initContainers"], "value": init_agents} if {
	inject
	not init_first
	count(init_agents) > 0
}

mutate contains {"op": "append", "path": ["spec", "containers"], "value": sidecar_agents} if {
	inject
	count(sidecar_agents) > 0
}

# A projected service account token needs a service account: the API server
# rejects one in a pod without spec.serviceAccountName. Its ServiceAccount
# admission plugin sets it ("default") before webhooks run, so this only
# matters where that plugin is off (and for portcullis validate); the value
# is the one the API server would choose.
mutate contains {"op": "default", "path": ["spec", "serviceAccountName"], "value": object.get(kubernetes.pod_spec, "serviceAccount", "default")} if {
	inject
	sa_token.volume
}

mutate contains {"op": "set", "path": ["spec", "shareProcessNamespace"], "value": share_process_namespace} if {
	inject
	is_boolean(share_process_namespace)
}

# --- denials and warnings ----------------------------------------------------------

deny contains {"msg": msg} if {
	candidate
	value := va["agent-inject"]
	not value in bool_strings
	msg := sprintf("annotation %q must be \"true\" or \"false\"", [key("agent-inject")])
}

deny contains {"msg": msg} if {
	active
	some name, value in va
	name != "agent-inject"
	bool_annotation(name)
	not value in bool_strings
	msg := sprintf("annotation %q must be \"true\" or \"false\"", [key(name)])
}

bool_annotation(name) if name in bool_annotations

bool_annotation(name) if {
	some p in bool_annotation_prefixes
	startswith(name, p)
}

# With agent-configmap the agent's own config file authenticates: no role
# needed (vault-k8s skips these checks then).
deny contains {"msg": msg} if {
	active
	config_map == ""
	auth_type == "kubernetes"
	role == ""
	object.get(va, "auth-config-role", "") == ""
	msg := sprintf("Vault agent injection needs a Vault role: set the %q annotation", [key("role")])
}

deny contains {"msg": msg} if {
	active
	config_map == ""
	address == ""
	msg := sprintf("Vault agent injection needs a Vault address: set policies.vault_agent.address or the %q annotation", [key("service")])
}

# vault-k8s refuses an empty request namespace; any other value only has to
# be there (it changes nothing in the pod).
deny contains {"msg": msg} if {
	active
	va["agent-request-namespace"] == ""
	msg := sprintf("annotation %q must not be empty", [key("agent-request-namespace")])
}

deny contains {"msg": msg} if {
	active
	not default_template in {"map", "json"}
	msg := sprintf("annotation %q must be \"map\" or \"json\"", [key("agent-inject-default-template")])
}

deny contains {"msg": msg} if {
	active
	pre_populate_only
	not pre_populate
	msg := sprintf("annotations %q and %q together would inject no agent", [key("agent-pre-populate-only"), key("agent-pre-populate")])
}

deny contains {"msg": msg} if {
	active
	some [name, raw] in [["agent-run-as-user", run_as_user_raw], ["agent-run-as-group", run_as_group_raw]]
	not regex.match(uid_pattern, raw)
	msg := sprintf("annotation %q must be a non-negative integer", [key(name)])
}

deny contains {"msg": msg} if {
	active
	run_as_same_user
	not run_as_user
	msg := sprintf("annotation %q needs the first container to set a non-zero securityContext.runAsUser", [key("agent-run-as-same-user")])
}

deny contains {"msg": msg} if {
	active
	share_process_namespace == true
	object.get(kubernetes.pod_spec, "shareProcessNamespace", null) == false
	msg := sprintf("annotation %q asks for a shared process namespace the pod explicitly disables", [key("agent-share-process-namespace")])
}

quantity_pattern := `^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$`

deny contains {"msg": msg} if {
	active
	some [_, _, name] in resource_annotations
	value := va[name]
	value != ""
	not regex.match(quantity_pattern, value)
	msg := sprintf("annotation %q is not a resource quantity (like 250m or 64Mi)", [key(name)])
}

deny contains {"msg": msg} if {
	active
	not regex.match(`^[0-9]{1,4}$`, revoke_grace)
	msg := sprintf("annotation %q must be a number of seconds", [key("agent-revoke-grace")])
}

deny contains {"msg": msg} if {
	active
	some name in ["auth-min-backoff", "auth-max-backoff"]
	value := va[name]
	value != ""
	not regex.match(duration_pattern, value)
	msg := sprintf("annotation %q must be a duration (like 1s or 5m)", [key(name)])
}

deny contains {"msg": msg} if {
	active
	value := va["template-max-connections-per-host"]
	not regex.match(int_pattern, value)
	msg := sprintf("annotation %q must be an integer", [key("template-max-connections-per-host")])
}

deny contains {"msg": msg} if {
	active
	value := va["template-lease-renewal-threshold"]
	not regex.match(float_pattern, value)
	msg := sprintf("annotation %q must be a number (a fraction of the lease, like 0.9)", [key("template-lease-renewal-threshold")])
}

# A JSON patch annotation must be a JSON array of operations that applies to
# the agent container.
deny contains {"msg": msg} if {
	active
	some [name, agent] in [["agent-json-patch", "vault-agent"], ["agent-init-json-patch", "vault-agent-init"]]
	value := va[name]
	value != ""
	not valid_patch(value)
	msg := sprintf("annotation %q is not a JSON patch (an array of RFC 6902 operations)", [key(name)])
}

valid_patch(value) if {
	json.is_valid(value)
	ops := json.unmarshal(value)
	is_array(ops)
	every op in ops {
		is_object(op)
		op.op in {"add", "remove", "replace", "move", "copy", "test"}
		is_string(op.path)
	}
}

deny contains {"msg": msg} if {
	active
	valid_patch(va["agent-init-json-patch"])
	pre_populate
	not init_container
	msg := sprintf("annotation %q does not apply to the %q container", [key("agent-init-json-patch"), "vault-agent-init"])
}

deny contains {"msg": msg} if {
	active
	valid_patch(va["agent-json-patch"])
	run_sidecar
	not sidecar
	msg := sprintf("annotation %q does not apply to the %q container", [key("agent-json-patch"), "vault-agent"])
}

deny contains {"msg": msg} if {
	active
	sa_volume_name != ""
	not sa_token
	msg := sprintf("annotation %q names no volume of the pod", [key("agent-service-account-token-volume-name")])
}

deny contains {"msg": msg} if {
	active
	sa_volume_name != ""
	sa_token.token_path == ""
	msg := sprintf("volume %q named by annotation %q is not a projected service account token", [sa_volume_name, key("agent-service-account-token-volume-name")])
}

deny contains {"msg": msg} if {
	active
	some s in secrets
	".." in split(s.file, "/")
	msg := sprintf("annotation %q must not contain \"..\"", [key(concat("", ["agent-inject-file-", s.raw]))])
}

warn contains {"msg": msg} if {
	active
	some name in unsupported_annotations
	has(name)
	msg := sprintf("annotation %q is not supported by Portcullis's Vault agent injection and is ignored", [key(name)])
}

warn contains {"msg": msg} if {
	active
	some param, _ in telemetry_values
	not telemetry_params[param]
	msg := sprintf("annotation %q is not a Vault Agent telemetry parameter and is ignored", [key(concat("", [telemetry_prefix, replace(param, "_", "-")]))])
}

warn contains {"msg": msg} if {
	active
	telemetry_wrong_type
	msg := sprintf("a %q annotation has a value of the wrong type: the agents get no telemetry stanza (as with vault-k8s)", [key("agent-telemetry-*")])
}

# vault-k8s matches agent-inject-containers literally; a name that matches no
# container only because of spaces is almost surely a mistake.
warn contains {"msg": msg} if {
	active
	has("agent-inject-containers")
	some n in selected_names
	n != trim_space(n)
	not n in {c.name | some c in kubernetes.pod_spec.containers}
	msg := sprintf("annotation %q names %q, which matches no container: names are matched exactly, without trimming spaces", [key("agent-inject-containers"), n])
}
