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
#   - annotations it does not implement (agent-configmap, agent-cache-*,
#     agent-extra-secret, agent-copy-volume-mounts, agent-json-patch, ...)
#     produce a warning instead of being silently ignored.
#
#   Injection is skipped when the pod is already marked
#   vault.hashicorp.com/agent-inject-status: injected (the injection sets it),
#   when it already has a vault-agent or vault-agent-init container, and in
#   kube-system, kube-public, the exempt namespaces and
#   policies.vault_agent.exclude_namespaces.
#
#   Reads: metadata.annotations (vault.hashicorp.com/*), spec.containers[*]
#   (names, volumeMounts), spec.initContainers[*].name, spec.volumes.
#   Denies (clear message, nothing injected): no role with the kubernetes
#   auth type, a boolean annotation that is not a boolean, an unknown default
#   template, pre-populate-only without pre-populate, a bad UID/GID or
#   resource quantity, a missing service account token volume, no Vault
#   address.
# custom:
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
	"image": "hashicorp/vault:1.20.0",
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
}

bool_annotation_prefixes := {"preserve-secret-case-", "error-on-missing-key-"}

# Annotations of vault-k8s this policy does not implement: warned about.
unsupported_annotations := {
	"agent-configmap", "agent-extra-secret", "agent-cache-enable", "agent-cache-use-auto-auth-token",
	"agent-cache-listener-port", "agent-cache-exit-on-err", "agent-copy-volume-mounts",
	"agent-json-patch", "agent-init-json-patch", "agent-run-as-same-user",
	"agent-share-process-namespace", "agent-enable-quit", "agent-auto-auth-exit-on-err",
	"agent-disable-idle-connections", "agent-disable-keep-alives", "auth-min-backoff",
	"auth-max-backoff", "template-max-connections-per-host", "agent-metrics-listener-port",
	"go-max-procs",
}

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

run_as_user_raw := object.get(va, "agent-run-as-user", as_string(cfg.run_as_user))

run_as_group_raw := object.get(va, "agent-run-as-group", as_string(cfg.run_as_group))

uid_pattern := `^[0-9]{1,10}$`

run_as_user := to_number(run_as_user_raw) if regex.match(uid_pattern, run_as_user_raw)

run_as_group := to_number(run_as_group_raw) if regex.match(uid_pattern, run_as_group_raw)

# as_string renders a config number the way an annotation would carry it.
as_string(x) := x if is_string(x)

as_string(x) := format_int(x, 10) if is_number(x)

# vault-k8s turns the security context on when a UID or GID is given.
set_security_context := object.get(parsed_flags, "agent-set-security-context", sc_default)

sc_default if {
	some name in ["agent-run-as-user", "agent-run-as-group"]
	has(name)
} else := cfg.set_security_context

revoke_on_shutdown := object.get(parsed_flags, "agent-revoke-on-shutdown", cfg.revoke_on_shutdown)

revoke_grace := object.get(va, "agent-revoke-grace", as_string(cfg.revoke_grace))

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

templates := [object.union(
	object.union(
		{"destination": destination(s), "left_delimiter": "{{", "right_delimiter": "}}"},
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

# --- agent configuration (VAULT_CONFIG) ---------------------------------------

# compact drops empty values, like Go's omitempty.
compact(obj) := {k: v | some k, v in obj; not empty(v)}

empty(v) if v in {"", false, null, {}, []}

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

# The configuration shared by both agents (rules, so evaluated once);
# agent_config adds exit_after_auth, the only difference.
shared_config := object.union(
	{
		"auto_auth": {
			"method": object.union({"type": auth_type}, compact({
				"mount_path": auth_path,
				"namespace": object.get(va, "namespace", cfg.vault_namespace),
				"config": auth_config,
			})),
			"sink": sinks,
		},
		"pid_file": "/home/vault/.pid",
		"vault": vault_stanza,
		"template_config": object.union(
			{"exit_on_retry_failure": object.get(parsed_flags, "template-config-exit-on-retry-failure", cfg.exit_on_retry_failure)},
			compact({"static_secret_render_interval": object.get(va, "template-static-secret-render-interval", "")}),
		),
	},
	compact({"template": templates}),
)

agent_config(exit_after_auth) := object.union(shared_config, {"exit_after_auth": exit_after_auth})

# --- containers ----------------------------------------------------------------

env(exit_after_auth) := array.concat(
	plain_env,
	[{"name": "VAULT_CONFIG", "value": base64.encode(json.marshal(agent_config(exit_after_auth)))}],
)

plain_env := [{"name": name, "value": value} |
	some [name, value] in [
		["VAULT_CLIENT_TIMEOUT", object.get(va, "client-timeout", "")],
		["VAULT_MAX_RETRIES", object.get(va, "client-max-retries", "")],
		["VAULT_LOG_LEVEL", object.get(va, "log-level", cfg.log_level)],
		["VAULT_LOG_FORMAT", object.get(va, "log-format", cfg.log_format)],
		["HTTPS_PROXY", object.get(va, "proxy-address", "")],
	]
	value != ""
]

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

agent_security_context := {
	"allowPrivilegeEscalation": false,
	"capabilities": {"drop": ["ALL"]},
	"readOnlyRootFilesystem": true,
	"runAsGroup": run_as_group,
	"runAsNonRoot": run_as_user != 0,
	"runAsUser": run_as_user,
	"seccompProfile": {"type": "RuntimeDefault"},
}

agent_args := ["echo ${VAULT_CONFIG?} | base64 -d > /home/vault/config.json && vault agent -config=/home/vault/config.json"]

tls_secret := object.get(va, "tls-secret", "")

tls_mounts := [{"name": "vault-tls-secrets", "mountPath": "/vault/tls", "readOnly": true} | tls_secret != ""]

container(name, exit_after_auth, mounts) := object.union(
	compact({
		"name": name,
		"image": image,
		"command": ["/bin/sh", "-ec"],
		"args": agent_args,
		"env": env(exit_after_auth),
		"resources": resources,
		"volumeMounts": mounts,
	}),
	{"securityContext": agent_security_context | set_security_context},
)

init_container := container(
	"vault-agent-init",
	true,
	array.concat(array.concat([{"name": "home-init", "mountPath": "/home/vault"}, sa_mount], secret_mounts), tls_mounts),
)

sidecar_mounts := array.concat(array.concat([sa_mount, {"name": "home-sidecar", "mountPath": "/home/vault"}], secret_mounts), tls_mounts)

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
		container("vault-agent", false, sidecar_mounts),
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

volumes := array.concat(
	array.concat(
		array.concat(
			[{"name": "home-init", "emptyDir": {"medium": "Memory"}} | pre_populate],
			[{"name": "home-sidecar", "emptyDir": {"medium": "Memory"}} | run_sidecar],
		),
		[sa_token.volume | sa_token.volume],
	),
	array.concat(
		[{"name": n, "emptyDir": {"medium": "Memory"}} | some m in secret_mounts; n := m.name],
		[{"name": "vault-tls-secrets", "secret": {"secretName": tls_secret}} | tls_secret != ""],
	),
)

# App containers that get the secrets: agent-inject-containers, else all.
selected_names := {trim_space(n) | some n in split(va["agent-inject-containers"], ",")} if {
	has("agent-inject-containers")
} else := {c.name | some c in object.get(kubernetes.pod_spec, "containers", [])}

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

deny contains {"msg": msg} if {
	active
	auth_type == "kubernetes"
	role == ""
	object.get(va, "auth-config-role", "") == ""
	msg := sprintf("Vault agent injection needs a Vault role: set the %q annotation", [key("role")])
}

deny contains {"msg": msg} if {
	active
	address == ""
	msg := sprintf("Vault agent injection needs a Vault address: set policies.vault_agent.address or the %q annotation", [key("service")])
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
	some name, _ in va
	startswith(name, "agent-telemetry-")
	msg := sprintf("annotation %q is not supported by Portcullis's Vault agent injection and is ignored", [key(name)])
}
