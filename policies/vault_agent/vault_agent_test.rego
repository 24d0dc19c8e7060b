package portcullis.vault_agent_test

import data.portcullis.vault_agent

# --- fixtures ------------------------------------------------------------------

sa_mount := {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}

app(name) := {"name": name, "image": "nginx:1.27", "volumeMounts": [sa_mount]}

review_ns(annotations, spec, ns) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"operation": "CREATE",
	"subResource": "",
	"namespace": ns,
	"object": {
		"apiVersion": "v1",
		"kind": "Pod",
		"metadata": {"name": "web", "namespace": ns, "annotations": annotations},
		"spec": spec,
	},
}}

review(annotations, spec) := review_ns(annotations, spec, "default")

# A pod asking for one secret, with the annotations given merged in.
pod(extra) := review(object.union(base_annotations, extra), {"containers": [app("app")]})

base_annotations := {
	"vault.hashicorp.com/agent-inject": "true",
	"vault.hashicorp.com/role": "web",
	"vault.hashicorp.com/agent-inject-secret-db": "database/creds/web",
}

db_template := {
	"destination": "/vault/secrets/db",
	"contents": "{{ with secret \"database/creds/web\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
	"left_delimiter": "{{",
	"right_delimiter": "}}",
}

# The agent configuration vault-k8s writes, with the parts given replaced.
agent_config(exit_after_auth, overrides) := object.union(
	{
		"auto_auth": {
			"method": {
				"type": "kubernetes",
				"mount_path": "auth/kubernetes",
				"config": {"role": "web", "token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
			},
			"sink": [{"type": "file", "config": {"path": "/home/vault/.vault-token"}}],
		},
		"exit_after_auth": exit_after_auth,
		"pid_file": "/home/vault/.pid",
		"vault": {"address": "https://vault.vault.svc:8200"},
		"template": [db_template],
		"template_config": {"exit_on_retry_failure": true},
	},
	overrides,
)

field_env(name, path) := {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

env(config) := [
	field_env("NAMESPACE", "metadata.namespace"),
	field_env("HOST_IP", "status.hostIP"),
	field_env("POD_IP", "status.podIP"),
	{"name": "VAULT_LOG_LEVEL", "value": "info"},
	{"name": "VAULT_LOG_FORMAT", "value": "standard"},
	{"name": "VAULT_CONFIG", "value": base64.encode(json.marshal(config))},
]

agent_security_context := {
	"allowPrivilegeEscalation": false,
	"capabilities": {"drop": ["ALL"]},
	"readOnlyRootFilesystem": true,
	"runAsGroup": 1000,
	"runAsNonRoot": true,
	"runAsUser": 100,
	"seccompProfile": {"type": "RuntimeDefault"},
}

agent_resources := {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}}

agent_args := ["echo ${VAULT_CONFIG?} | base64 -d > /home/vault/config.json && vault agent -config=/home/vault/config.json"]

secrets_mount := {"name": "vault-secrets", "mountPath": "/vault/secrets"}

init_agent(config) := {
	"name": "vault-agent-init",
	"image": "hashicorp/vault:2.0.4",
	"command": ["/bin/sh", "-ec"],
	"args": agent_args,
	"env": env(config),
	"resources": agent_resources,
	"securityContext": agent_security_context,
	"volumeMounts": [{"name": "home-init", "mountPath": "/home/vault"}, sa_mount, secrets_mount],
}

sidecar_agent(config) := {
	"name": "vault-agent",
	"image": "hashicorp/vault:2.0.4",
	"command": ["/bin/sh", "-ec"],
	"args": agent_args,
	"env": env(config),
	"resources": agent_resources,
	"securityContext": agent_security_context,
	"volumeMounts": [sa_mount, {"name": "home-sidecar", "mountPath": "/home/vault"}, secrets_mount],
}

memory(name) := {"name": name, "emptyDir": {"medium": "Memory"}}

status_edit := {"op": "set", "path": ["metadata", "annotations", "vault.hashicorp.com/agent-inject-status"], "value": "injected"}

app_mount_edit(name) := {"op": "append", "path": ["spec", "containers", {"name": name}, "volumeMounts"], "value": [secrets_mount]}

# The edits of a default injection (init container and sidecar).
default_edits := {
	status_edit,
	{"op": "append", "path": ["spec", "volumes"], "value": [memory("home-init"), memory("home-sidecar"), memory("vault-secrets")]},
	app_mount_edit("app"),
	{"op": "append", "path": ["spec", "initContainers"], "value": [init_agent(agent_config(true, {}))]},
	{"op": "append", "path": ["spec", "containers"], "value": [sidecar_agent(agent_config(false, {}))]},
}

# edit_at returns the edit of mutations at path.
edit_at(mutations, path) := [m | some m in mutations; m.path == path][0]

init_containers_value(mutations) := edit_at(mutations, ["spec", "initContainers"]).value

sidecar_value(mutations) := edit_at(mutations, ["spec", "containers"]).value[0]

decoded_config(container) := json.unmarshal(base64.decode([e.value | some e in container.env; e.name == "VAULT_CONFIG"][0]))

# --- the default injection ---------------------------------------------------------

test_default_injection if {
	vault_agent.mutate == default_edits with input as pod({})
	count(vault_agent.deny) == 0 with input as pod({})
	count(vault_agent.warn) == 0 with input as pod({})
}

test_default_agent_config_structure if {
	mutations := vault_agent.mutate with input as pod({})
	decoded_config(init_containers_value(mutations)[0]) == {
		"auto_auth": {
			"method": {
				"type": "kubernetes",
				"mount_path": "auth/kubernetes",
				"config": {"role": "web", "token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
			},
			"sink": [{"type": "file", "config": {"path": "/home/vault/.vault-token"}}],
		},
		"exit_after_auth": true,
		"pid_file": "/home/vault/.pid",
		"vault": {"address": "https://vault.vault.svc:8200"},
		"template": [db_template],
		"template_config": {"exit_on_retry_failure": true},
	}
	decoded_config(sidecar_value(mutations)).exit_after_auth == false
}

test_configured_defaults if {
	mutations := vault_agent.mutate with input as pod({})
		with data.portcullis.config.policies.vault_agent as {
			"address": "https://vault.example:8200",
			"image": "registry.example/vault:1.21.0",
			"auth_path": "auth/k8s-prod",
			"log_level": "debug",
			"resources": {"limits": {"cpu": "1"}, "requests": {"memory": "32Mi"}},
		}
	sidecar := sidecar_value(mutations)
	sidecar.image == "registry.example/vault:1.21.0"
	sidecar.resources == {"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "32Mi"}}
	sidecar.env[3] == {"name": "VAULT_LOG_LEVEL", "value": "debug"}
	config := decoded_config(sidecar)
	config.vault == {"address": "https://vault.example:8200"}
	config.auto_auth.method.mount_path == "auth/k8s-prod"
}

# --- container shapes ----------------------------------------------------------------

test_pre_populate_only if {
	vault_agent.mutate == {
		status_edit,
		{"op": "append", "path": ["spec", "volumes"], "value": [memory("home-init"), memory("vault-secrets")]},
		app_mount_edit("app"),
		{"op": "append", "path": ["spec", "initContainers"], "value": [init_agent(agent_config(true, {}))]},
	} with input as pod({"vault.hashicorp.com/agent-pre-populate-only": "true"})
}

test_no_pre_populate if {
	vault_agent.mutate == {
		status_edit,
		{"op": "append", "path": ["spec", "volumes"], "value": [memory("home-sidecar"), memory("vault-secrets")]},
		app_mount_edit("app"),
		{"op": "append", "path": ["spec", "containers"], "value": [sidecar_agent(agent_config(false, {}))]},
	} with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-pre-populate": "false"}),
		{"initContainers": [{"name": "migrate", "image": "migrate:1"}], "containers": [app("app")]},
	)
}

test_init_first_prepends_and_mounts_existing_init_containers if {
	vault_agent.mutate == {
		status_edit,
		{"op": "append", "path": ["spec", "volumes"], "value": [memory("home-init"), memory("home-sidecar"), memory("vault-secrets")]},
		app_mount_edit("app"),
		{"op": "append", "path": ["spec", "initContainers", {"name": "migrate"}, "volumeMounts"], "value": [secrets_mount]},
		{"op": "prepend", "path": ["spec", "initContainers"], "value": [init_agent(agent_config(true, {}))]},
		{"op": "append", "path": ["spec", "containers"], "value": [sidecar_agent(agent_config(false, {}))]},
	} with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-init-first": "true"}),
		{"initContainers": [{"name": "migrate", "image": "migrate:1"}], "containers": [app("app")]},
	)
}

test_existing_init_containers_mounted_when_appended if {
	mutations := vault_agent.mutate with input as review(
		base_annotations,
		{"initContainers": [{"name": "migrate", "image": "migrate:1"}], "containers": [app("app")]},
	)
	{"op": "append", "path": ["spec", "initContainers", {"name": "migrate"}, "volumeMounts"], "value": [secrets_mount]} in mutations
	{"op": "append", "path": ["spec", "initContainers"], "value": [init_agent(agent_config(true, {}))]} in mutations
}

test_selected_containers if {
	vault_agent.mutate == (default_edits | {app_mount_edit("api")}) - {app_mount_edit("app")} with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-inject-containers": "api,missing"}),
		{"containers": [app("app"), app("api"), app("metrics")]},
	)
}

test_all_containers_by_default if {
	mutations := vault_agent.mutate with input as review(base_annotations, {"containers": [app("app"), app("api")]})
	app_mount_edit("app") in mutations
	app_mount_edit("api") in mutations
}

test_native_sidecar_annotation if {
	native := object.union(sidecar_agent(agent_config(false, {})), {"restartPolicy": "Always"})
	vault_agent.mutate == {
		status_edit,
		{"op": "append", "path": ["spec", "volumes"], "value": [memory("home-init"), memory("home-sidecar"), memory("vault-secrets")]},
		app_mount_edit("app"),
		{"op": "append", "path": ["spec", "initContainers"], "value": [init_agent(agent_config(true, {})), native]},
	} with input as pod({"vault.hashicorp.com/agent-native-sidecar": "true"})
}

test_native_sidecar_config_and_opt_out if {
	mutations := vault_agent.mutate with input as pod({}) with data.portcullis.config.policies.vault_agent.native_sidecar as true
	[c.name | some c in init_containers_value(mutations)] == ["vault-agent-init", "vault-agent"]
	init_containers_value(mutations)[1].restartPolicy == "Always"
	vault_agent.mutate == default_edits with input as pod({"vault.hashicorp.com/agent-native-sidecar": "false"})
		with data.portcullis.config.policies.vault_agent.native_sidecar as true
}

test_native_sidecar_without_pre_populate if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-native-sidecar": "true",
		"vault.hashicorp.com/agent-pre-populate": "false",
	})
	[c.name | some c in init_containers_value(mutations)] == ["vault-agent"]
	not edit_at(mutations, ["spec", "containers"])
}

# --- templates ------------------------------------------------------------------------

test_custom_template_file_perms_command if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-inject-template-db": "{{ with secret \"database/creds/web\" }}{{ .Data.username }}{{ end }}",
		"vault.hashicorp.com/agent-inject-file-db": "config/db.env",
		"vault.hashicorp.com/agent-inject-perms-db": "0400",
		"vault.hashicorp.com/agent-inject-command-db": "kill -HUP 1",
	})
	decoded_config(sidecar_value(mutations)).template == [{
		"destination": "/vault/secrets/config/db.env",
		"contents": "{{ with secret \"database/creds/web\" }}{{ .Data.username }}{{ end }}",
		"left_delimiter": "{{",
		"right_delimiter": "}}",
		"perms": "0400",
		"command": "kill -HUP 1",
	}]
}

test_template_only_secret if {
	mutations := vault_agent.mutate with input as review(
		{
			"vault.hashicorp.com/agent-inject": "true",
			"vault.hashicorp.com/role": "web",
			"vault.hashicorp.com/agent-inject-template-app.conf": "{{ with secret \"kv/data/web\" }}{{ .Data.data.user }}{{ end }}",
		},
		{"containers": [app("app")]},
	)
	decoded_config(sidecar_value(mutations)).template == [{
		"destination": "/vault/secrets/app.conf",
		"contents": "{{ with secret \"kv/data/web\" }}{{ .Data.data.user }}{{ end }}",
		"left_delimiter": "{{",
		"right_delimiter": "}}",
	}]
}

test_template_file_is_a_source if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-inject-template-file-db": "/vault/templates/db.tmpl",
	})
	decoded_config(sidecar_value(mutations)).template == [{
		"destination": "/vault/secrets/db",
		"source": "/vault/templates/db.tmpl",
		"left_delimiter": "{{",
		"right_delimiter": "}}",
	}]
}

test_json_default_template if {
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-inject-default-template": "JSON"})
	decoded_config(sidecar_value(mutations)).template == [{
		"destination": "/vault/secrets/db",
		"contents": "{{ with secret \"database/creds/web\" }}{{ .Data | toJSON }}\n{{ end }}",
		"left_delimiter": "{{",
		"right_delimiter": "}}",
	}]
}

test_several_secrets_sorted_and_error_on_missing_key if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-inject-secret-api": "kv/data/api",
		"vault.hashicorp.com/error-on-missing-key-api": "true",
		"vault.hashicorp.com/agent-inject-secret-blank": " ",
	})
	[t.destination | some t in decoded_config(sidecar_value(mutations)).template] == ["/vault/secrets/api", "/vault/secrets/db"]
	decoded_config(sidecar_value(mutations)).template[0].error_on_missing_key == true
}

# Secrets are ordered by their raw (annotation) names.
test_secret_names_lowercased if {
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-inject-secret-DbPass": "kv/data/pass"})
	[t.destination | some t in decoded_config(sidecar_value(mutations)).template] == ["/vault/secrets/dbpass", "/vault/secrets/db"]
}

test_preserve_secret_case_global if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-inject-secret-DbPass": "kv/data/pass",
		"vault.hashicorp.com/preserve-secret-case": "true",
	})
	[t.destination | some t in decoded_config(sidecar_value(mutations)).template] == ["/vault/secrets/DbPass", "/vault/secrets/db"]
}

test_preserve_secret_case_per_secret if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-inject-secret-DbPass": "kv/data/pass",
		"vault.hashicorp.com/agent-inject-secret-ApiKey": "kv/data/api",
		"vault.hashicorp.com/preserve-secret-case-DbPass": "true",
	})
	[t.destination | some t in decoded_config(sidecar_value(mutations)).template] == ["/vault/secrets/apikey", "/vault/secrets/DbPass", "/vault/secrets/db"]
}

# --- volumes and paths -------------------------------------------------------------------

test_secret_volume_path if {
	mount := {"name": "vault-secrets", "mountPath": "/etc/secrets"}
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/secret-volume-path": "/etc/secrets"})
	{"op": "append", "path": ["spec", "containers", {"name": "app"}, "volumeMounts"], "value": [mount]} in mutations
	sidecar_value(mutations).volumeMounts == [sa_mount, {"name": "home-sidecar", "mountPath": "/home/vault"}, mount]
	decoded_config(sidecar_value(mutations)).template[0].destination == "/etc/secrets/db"
}

test_per_secret_volume_paths_get_custom_volumes if {
	mounts := [
		secrets_mount,
		{"name": "vault-secrets-custom-0", "mountPath": "/etc/api"},
		{"name": "vault-secrets-custom-1", "mountPath": "/etc/db"},
	]
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-inject-secret-api": "kv/data/api",
		"vault.hashicorp.com/secret-volume-path-api": "/etc/api",
		"vault.hashicorp.com/agent-inject-secret-cache": "kv/data/cache",
		"vault.hashicorp.com/secret-volume-path-cache": "/etc/api",
		"vault.hashicorp.com/secret-volume-path-db": "/etc/db",
	})
	{"op": "append", "path": ["spec", "containers", {"name": "app"}, "volumeMounts"], "value": mounts} in mutations
	edit_at(mutations, ["spec", "volumes"]).value == [
		memory("home-init"), memory("home-sidecar"), memory("vault-secrets"),
		memory("vault-secrets-custom-0"), memory("vault-secrets-custom-1"),
	]
	[t.destination | some t in decoded_config(sidecar_value(mutations)).template] == ["/etc/api/api", "/etc/api/cache", "/etc/db/db"]
}

test_inject_token if {
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-inject-token": "true"})
	decoded_config(sidecar_value(mutations)).auto_auth.sink == [
		{"type": "file", "config": {"path": "/home/vault/.vault-token"}},
		{"type": "file", "config": {"path": "/vault/secrets/token"}},
	]
}

test_tls_settings if {
	tls_mount := {"name": "vault-tls-secrets", "mountPath": "/vault/tls", "readOnly": true}
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/tls-secret": "vault-tls",
		"vault.hashicorp.com/ca-cert": "/vault/tls/ca.crt",
		"vault.hashicorp.com/client-cert": "/vault/tls/tls.crt",
		"vault.hashicorp.com/client-key": "/vault/tls/tls.key",
		"vault.hashicorp.com/tls-server-name": "vault.internal",
		"vault.hashicorp.com/tls-skip-verify": "true",
	})
	edit_at(mutations, ["spec", "volumes"]).value == [
		memory("home-init"), memory("home-sidecar"), memory("vault-secrets"),
		{"name": "vault-tls-secrets", "secret": {"secretName": "vault-tls"}},
	]
	sidecar_value(mutations).volumeMounts == [sa_mount, {"name": "home-sidecar", "mountPath": "/home/vault"}, secrets_mount, tls_mount]
	init_containers_value(mutations)[0].volumeMounts == [{"name": "home-init", "mountPath": "/home/vault"}, sa_mount, secrets_mount, tls_mount]
	decoded_config(sidecar_value(mutations)).vault == {
		"address": "https://vault.vault.svc:8200",
		"ca_cert": "/vault/tls/ca.crt",
		"client_cert": "/vault/tls/tls.crt",
		"client_key": "/vault/tls/tls.key",
		"tls_server_name": "vault.internal",
		"tls_skip_verify": true,
	}

	# The app containers only get the secrets.
	app_mount_edit("app") in mutations
}

test_auth_settings if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/service": "https://vault.other:8200",
		"vault.hashicorp.com/auth-path": "auth/cluster-b",
		"vault.hashicorp.com/namespace": "team-a",
		"vault.hashicorp.com/auth-config-audience": "vault",
	})
	config := decoded_config(sidecar_value(mutations))
	config.vault == {"address": "https://vault.other:8200"}
	config.auto_auth.method == {
		"type": "kubernetes",
		"mount_path": "auth/cluster-b",
		"namespace": "team-a",
		"config": {"role": "web", "audience": "vault", "token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
	}
}

test_other_auth_type_needs_no_role if {
	mutations := vault_agent.mutate with input as review(
		{
			"vault.hashicorp.com/agent-inject": "true",
			"vault.hashicorp.com/auth-type": "jwt",
			"vault.hashicorp.com/auth-config-path": "/var/run/secrets/tokens/vault",
			"vault.hashicorp.com/agent-inject-secret-db": "database/creds/web",
		},
		{"containers": [app("app")]},
	)
	count(vault_agent.deny) == 0 with input as review({"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/auth-type": "jwt"}, {"containers": [app("app")]})
	decoded_config(sidecar_value(mutations)).auto_auth.method == {
		"type": "jwt",
		"mount_path": "auth/kubernetes",
		"config": {"path": "/var/run/secrets/tokens/vault", "token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
	}
}

test_no_service_account_mount_gets_projected_token if {
	token_mount := {"name": "vault-agent-sa-token", "mountPath": "/var/run/secrets/vault.hashicorp.com/serviceaccount", "readOnly": true}
	mutations := vault_agent.mutate with input as review(base_annotations, {"automountServiceAccountToken": false, "containers": [{"name": "app", "image": "nginx:1.27"}]})
	edit_at(mutations, ["spec", "volumes"]).value == [
		memory("home-init"), memory("home-sidecar"),
		{"name": "vault-agent-sa-token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}},
		memory("vault-secrets"),
	]
	sidecar_value(mutations).volumeMounts[0] == token_mount
	decoded_config(sidecar_value(mutations)).auto_auth.method.config.token_path == "/var/run/secrets/vault.hashicorp.com/serviceaccount/token"

	# The API server refuses a projected token without a service account.
	{"op": "default", "path": ["spec", "serviceAccountName"], "value": "default"} in mutations
	{"op": "default", "path": ["spec", "serviceAccountName"], "value": "legacy"} in vault_agent.mutate with input as review(base_annotations, {"serviceAccount": "legacy", "containers": [{"name": "app", "image": "nginx:1.27"}]})
}

test_service_account_token_volume_name if {
	spec := {
		"volumes": [{"name": "vault-token", "projected": {"sources": [{"serviceAccountToken": {"path": "vault-jwt", "audience": "vault"}}]}}],
		"containers": [{"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "vault-token", "mountPath": "/var/run/secrets/vault"}]}],
	}
	mutations := vault_agent.mutate with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-service-account-token-volume-name": "vault-token"}),
		spec,
	)
	sidecar_value(mutations).volumeMounts[0] == {"name": "vault-token", "mountPath": "/var/run/secrets/vault", "readOnly": true}
	decoded_config(sidecar_value(mutations)).auto_auth.method.config.token_path == "/var/run/secrets/vault/vault-jwt"
}

# --- agent container settings ----------------------------------------------------------------

test_resources_annotations if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-limits-cpu": "1",
		"vault.hashicorp.com/agent-limits-mem": "",
		"vault.hashicorp.com/agent-requests-cpu": "100m",
		"vault.hashicorp.com/agent-requests-mem": "32Mi",
		"vault.hashicorp.com/agent-requests-ephemeral": "1Gi",
	})
	expected := {"limits": {"cpu": "1"}, "requests": {"cpu": "100m", "memory": "32Mi", "ephemeral-storage": "1Gi"}}
	sidecar_value(mutations).resources == expected
	init_containers_value(mutations)[0].resources == expected
}

test_run_as_user_and_group if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-run-as-user": "2000",
		"vault.hashicorp.com/agent-run-as-group": "3000",
	})
	sidecar_value(mutations).securityContext == object.union(agent_security_context, {"runAsUser": 2000, "runAsGroup": 3000})
}

test_run_as_root_is_the_users_choice if {
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-run-as-user": "0"})
	sidecar_value(mutations).securityContext == object.union(agent_security_context, {"runAsUser": 0, "runAsNonRoot": false})
}

test_set_security_context_false if {
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-set-security-context": "false"})
	not sidecar_value(mutations).securityContext
	not init_containers_value(mutations)[0].securityContext
}

test_revoke_on_shutdown if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-revoke-on-shutdown": "true",
		"vault.hashicorp.com/ca-cert": "/vault/tls/ca.crt",
	})
	sidecar_value(mutations).lifecycle == {"preStop": {"exec": {"command": [
		"/bin/sh", "-c",
		"/bin/sleep 5 && /bin/vault token revoke -address=https://vault.vault.svc:8200 -ca-cert=/vault/tls/ca.crt -self",
	]}}}
	not init_containers_value(mutations)[0].lifecycle
}

test_revoke_grace if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-revoke-on-shutdown": "true",
		"vault.hashicorp.com/agent-revoke-grace": "12",
	})
	sidecar_value(mutations).lifecycle.preStop.exec.command[2] == "/bin/sleep 12 && /bin/vault token revoke -address=https://vault.vault.svc:8200 -self"
}

test_log_level_image_and_client_env if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/log-level": "trace",
		"vault.hashicorp.com/log-format": "json",
		"vault.hashicorp.com/agent-image": "hashicorp/vault:1.19.5",
		"vault.hashicorp.com/client-timeout": "30s",
		"vault.hashicorp.com/client-max-retries": "4",
		"vault.hashicorp.com/proxy-address": "http://proxy:3128",
	})
	sidecar := sidecar_value(mutations)
	sidecar.image == "hashicorp/vault:1.19.5"
	[[e.name, e.value] | some e in sidecar.env; e.name != "VAULT_CONFIG"] == [
		["VAULT_CLIENT_TIMEOUT", "30s"],
		["VAULT_MAX_RETRIES", "4"],
		["VAULT_LOG_LEVEL", "trace"],
		["VAULT_LOG_FORMAT", "json"],
		["HTTPS_PROXY", "http://proxy:3128"],
	]
}

test_template_config_annotations if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/template-config-exit-on-retry-failure": "false",
		"vault.hashicorp.com/template-static-secret-render-interval": "10m",
	})
	decoded_config(sidecar_value(mutations)).template_config == {"exit_on_retry_failure": false, "static_secret_render_interval": "10m"}
}

# --- when not to inject ---------------------------------------------------------------------

test_already_injected if {
	input_pod := pod({"vault.hashicorp.com/agent-inject-status": "injected"})
	count(vault_agent.mutate) == 0 with input as input_pod
	count(vault_agent.deny) == 0 with input as input_pod
}

test_other_status_injects if {
	vault_agent.mutate == default_edits with input as pod({"vault.hashicorp.com/agent-inject-status": "update"})
}

test_existing_agent_container_not_duplicated if {
	count(vault_agent.mutate) == 0 with input as review(base_annotations, {"containers": [app("app"), {"name": "vault-agent", "image": "hashicorp/vault:1.20.0"}]})
	count(vault_agent.mutate) == 0 with input as review(base_annotations, {"initContainers": [{"name": "vault-agent-init", "image": "hashicorp/vault:1.20.0"}], "containers": [app("app")]})
}

test_not_requested if {
	count(vault_agent.mutate) == 0 with input as pod({"vault.hashicorp.com/agent-inject": "false"})
	count(vault_agent.mutate) == 0 with input as review({"vault.hashicorp.com/role": "web"}, {"containers": [app("app")]})
	count(vault_agent.deny) == 0 with input as review({"vault.hashicorp.com/role": "web"}, {"containers": [app("app")]})
}

test_kube_system_and_kube_public_skipped if {
	count(vault_agent.mutate) == 0 with input as review_ns(base_annotations, {"containers": [app("app")]}, "kube-system")
	count(vault_agent.mutate) == 0 with input as review_ns(base_annotations, {"containers": [app("app")]}, "kube-public")
	count(vault_agent.deny) == 0 with input as review_ns({"vault.hashicorp.com/agent-inject": "true"}, {"containers": [app("app")]}, "kube-system")
}

test_configured_exclusions_skipped if {
	count(vault_agent.mutate) == 0 with input as review_ns(base_annotations, {"containers": [app("app")]}, "vault")
		with data.portcullis.config.policies.vault_agent.exclude_namespaces as ["vault", "infra-*"]
	count(vault_agent.mutate) == 0 with input as review_ns(base_annotations, {"containers": [app("app")]}, "infra-db")
		with data.portcullis.config.policies.vault_agent.exclude_namespaces as ["vault", "infra-*"]
	count(vault_agent.mutate) == 0 with input as review_ns(base_annotations, {"containers": [app("app")]}, "portcullis")
		with data.portcullis.config.exempt_namespaces as ["portcullis"]
}

test_update_untouched if {
	count(vault_agent.mutate) == 0 with input as json.patch(pod({}), [{"op": "replace", "path": "/request/operation", "value": "UPDATE"}])
}

# --- denials and warnings ---------------------------------------------------------------------

test_missing_role_denied if {
	no_role := review(
		{"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/agent-inject-secret-db": "database/creds/web"},
		{"containers": [app("app")]},
	)
	vault_agent.deny == {{"msg": "Vault agent injection needs a Vault role: set the \"vault.hashicorp.com/role\" annotation"}} with input as no_role
	count(vault_agent.mutate) == 0 with input as no_role
}

test_auth_config_role_is_a_role if {
	mutations := vault_agent.mutate with input as review(
		{
			"vault.hashicorp.com/agent-inject": "true",
			"vault.hashicorp.com/auth-config-role": "web",
			"vault.hashicorp.com/agent-inject-secret-db": "database/creds/web",
		},
		{"containers": [app("app")]},
	)
	decoded_config(sidecar_value(mutations)).auto_auth.method.config.role == "web"
}

test_bad_boolean_denied if {
	bad := pod({"vault.hashicorp.com/agent-pre-populate-only": "yes", "vault.hashicorp.com/preserve-secret-case-db": "maybe"})
	vault_agent.deny == {
		{"msg": "annotation \"vault.hashicorp.com/agent-pre-populate-only\" must be \"true\" or \"false\""},
		{"msg": "annotation \"vault.hashicorp.com/preserve-secret-case-db\" must be \"true\" or \"false\""},
	} with input as bad
	count(vault_agent.mutate) == 0 with input as bad
}

test_bad_agent_inject_denied if {
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/agent-inject\" must be \"true\" or \"false\""}} with input as pod({"vault.hashicorp.com/agent-inject": "on"})
}

test_bad_default_template_denied if {
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/agent-inject-default-template\" must be \"map\" or \"json\""}} with input as pod({"vault.hashicorp.com/agent-inject-default-template": "yaml"})
}

test_pre_populate_only_without_pre_populate_denied if {
	vault_agent.deny == {{"msg": "annotations \"vault.hashicorp.com/agent-pre-populate-only\" and \"vault.hashicorp.com/agent-pre-populate\" together would inject no agent"}} with input as pod({
		"vault.hashicorp.com/agent-pre-populate-only": "true",
		"vault.hashicorp.com/agent-pre-populate": "false",
	})
}

test_bad_uid_and_quantity_denied if {
	vault_agent.deny == {
		{"msg": "annotation \"vault.hashicorp.com/agent-run-as-user\" must be a non-negative integer"},
		{"msg": "annotation \"vault.hashicorp.com/agent-limits-mem\" is not a resource quantity (like 250m or 64Mi)"},
		{"msg": "annotation \"vault.hashicorp.com/agent-revoke-grace\" must be a number of seconds"},
	} with input as pod({
		"vault.hashicorp.com/agent-run-as-user": "-1",
		"vault.hashicorp.com/agent-limits-mem": "lots",
		"vault.hashicorp.com/agent-revoke-grace": "5s",
	})
}

test_missing_service_account_volume_denied if {
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/agent-service-account-token-volume-name\" names no volume of the pod"}} with input as pod({"vault.hashicorp.com/agent-service-account-token-volume-name": "nope"})
	vault_agent.deny == {{"msg": "volume \"data\" named by annotation \"vault.hashicorp.com/agent-service-account-token-volume-name\" is not a projected service account token"}} with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-service-account-token-volume-name": "data"}),
		{"volumes": [{"name": "data", "emptyDir": {}}], "containers": [app("app")]},
	)
}

test_dot_dot_file_denied if {
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/agent-inject-file-db\" must not contain \"..\""}} with input as pod({"vault.hashicorp.com/agent-inject-file-db": "../../etc/passwd"})
}

test_no_address_denied if {
	vault_agent.deny == {{"msg": "Vault agent injection needs a Vault address: set policies.vault_agent.address or the \"vault.hashicorp.com/service\" annotation"}} with input as pod({})
		with data.portcullis.config.policies.vault_agent.address as ""
}

test_unknown_annotations_warned if {
	vault_agent.warn == {
		{"msg": "annotation \"vault.hashicorp.com/agent-metrics-listener-port\" is not supported by Portcullis's Vault agent injection and is ignored"},
		{"msg": "annotation \"vault.hashicorp.com/agent-telemetry-no-such-param\" is not a Vault Agent telemetry parameter and is ignored"},
	} with input as pod({
		"vault.hashicorp.com/agent-metrics-listener-port": "9102",
		"vault.hashicorp.com/agent-telemetry-no-such-param": "1",
	})
	vault_agent.mutate == default_edits with input as pod({"vault.hashicorp.com/agent-metrics-listener-port": "9102"})
}

test_inject_containers_matched_literally if {
	mutations := vault_agent.mutate with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-inject-containers": "app, api"}),
		{"containers": [app("app"), app("api")]},
	)
	app_mount_edit("app") in mutations
	not app_mount_edit("api") in mutations
	vault_agent.warn == {{"msg": "annotation \"vault.hashicorp.com/agent-inject-containers\" names \" api\", which matches no container: names are matched exactly, without trimming spaces"}} with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-inject-containers": "app, api"}),
		{"containers": [app("app"), app("api")]},
	)
}

# --- vault-k8s annotations beyond the basics ------------------------------------------

init_value(mutations) := init_containers_value(mutations)[0]

env_value(container, name) := [object.get(e, "value", e) | some e in container.env; e.name == name][0]

test_go_max_procs_and_proxy if {
	sidecar := sidecar_value(vault_agent.mutate) with input as pod({"vault.hashicorp.com/go-max-procs": "2"})
		with data.portcullis.config.policies.vault_agent.proxy_address as "http://proxy:3128"
	env_value(sidecar, "GOMAXPROCS") == "2"
	env_value(sidecar, "HTTPS_PROXY") == "http://proxy:3128"
	[e.name | some e in sidecar.env] == ["NAMESPACE", "HOST_IP", "POD_IP", "GOMAXPROCS", "VAULT_LOG_LEVEL", "VAULT_LOG_FORMAT", "HTTPS_PROXY", "VAULT_CONFIG"]
}

test_ca_cert_bytes_pem_or_base64 if {
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	env_value(sidecar_value(vault_agent.mutate), "VAULT_CACERT_BYTES") == pem with input as pod({})
		with data.portcullis.config.policies.vault_agent.ca_cert_bytes as pem
	env_value(sidecar_value(vault_agent.mutate), "VAULT_CACERT_BYTES") == pem with input as pod({})
		with data.portcullis.config.policies.vault_agent.ca_cert_bytes as base64.encode(pem)
}

test_auth_backoffs_and_exit_on_err if {
	method := decoded_config(sidecar_value(vault_agent.mutate)).auto_auth.method with input as pod({
		"vault.hashicorp.com/auth-min-backoff": "2s",
		"vault.hashicorp.com/agent-auto-auth-exit-on-err": "true",
	})
		with data.portcullis.config.policies.vault_agent.auth_max_backoff as "1m"
	method.min_backoff == "2s"
	method.max_backoff == "1m"
	method.exit_on_err == true
}

test_bad_backoff_denied if {
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/auth-max-backoff\" must be a duration (like 1s or 5m)"}} with input as pod({"vault.hashicorp.com/auth-max-backoff": "five minutes"})
}

listener_8200 := {"type": "tcp", "address": "127.0.0.1:8200", "tls_disable": true}

test_cache_persisted_in_both_agents if {
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-cache-enable": "true", "vault.hashicorp.com/agent-cache-exit-on-err": "true"})
	persisted := {"use_auto_auth_token": "true", "persist": {"type": "kubernetes", "path": "/vault/agent-cache", "exit_on_err": true}}
	decoded_config(init_value(mutations)).cache == persisted
	decoded_config(sidecar_value(mutations)).cache == persisted
	decoded_config(sidecar_value(mutations)).listener == [listener_8200]
	{"name": "vault-agent-cache", "mountPath": "/vault/agent-cache"} in sidecar_value(mutations).volumeMounts
	memory("vault-agent-cache") in edit_at(mutations, ["spec", "volumes"]).value
}

test_cache_without_init_agent_only_in_sidecar if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-cache-enable": "true",
		"vault.hashicorp.com/agent-pre-populate": "false",
		"vault.hashicorp.com/agent-cache-listener-port": "8300",
		"vault.hashicorp.com/agent-cache-use-auto-auth-token": "force",
	})
	config := decoded_config(sidecar_value(mutations))
	config.cache == {"use_auto_auth_token": "force"}
	config.listener == [{"type": "tcp", "address": "127.0.0.1:8300", "tls_disable": true}]
	not memory("vault-agent-cache") in edit_at(mutations, ["spec", "volumes"]).value
}

test_enable_quit_opens_a_listener if {
	mutations := vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-enable-quit": "true"})
	every container in [init_value(mutations), sidecar_value(mutations)] {
		decoded_config(container).listener == [object.union(listener_8200, {"agent_api": {"enable_quit": true}})]
		decoded_config(container).cache == {}
	}
}

test_template_config_and_connections if {
	config := decoded_config(sidecar_value(vault_agent.mutate)) with input as pod({
		"vault.hashicorp.com/template-max-connections-per-host": "20",
		"vault.hashicorp.com/template-lease-renewal-threshold": "0.75",
		"vault.hashicorp.com/agent-disable-idle-connections": "auto-auth,templating",
		"vault.hashicorp.com/agent-disable-keep-alives": "caching",
	})
	config.template_config == {"exit_on_retry_failure": true, "max_connections_per_host": 20, "lease_renewal_threshold": 0.75}
	config.disable_idle_connections == ["auto-auth", "templating"]
	config.disable_keep_alives == ["caching"]
}

test_bad_numbers_denied if {
	vault_agent.deny == {
		{"msg": "annotation \"vault.hashicorp.com/template-max-connections-per-host\" must be an integer"},
		{"msg": "annotation \"vault.hashicorp.com/template-lease-renewal-threshold\" must be a number (a fraction of the lease, like 0.9)"},
	} with input as pod({
		"vault.hashicorp.com/template-max-connections-per-host": "many",
		"vault.hashicorp.com/template-lease-renewal-threshold": "most",
	})
}

test_telemetry_values_read_as_json if {
	config := decoded_config(sidecar_value(vault_agent.mutate)) with input as pod({
		"vault.hashicorp.com/agent-telemetry-prometheus-retention-time": "30s",
		"vault.hashicorp.com/agent-telemetry-disable-hostname": "true",
		"vault.hashicorp.com/agent-telemetry-prefix-filter": "[\"+vault.token\"]",
	})
	config.telemetry == {"prometheus_retention_time": "30s", "disable_hostname": true, "prefix_filter": ["+vault.token"]}
}

test_telemetry_wrong_type_drops_stanza if {
	config := decoded_config(sidecar_value(vault_agent.mutate)) with input as pod({"vault.hashicorp.com/agent-telemetry-disable-hostname": "yes please"})
	not config.telemetry
}

test_template_delimiters if {
	config := decoded_config(sidecar_value(vault_agent.mutate)) with input as pod({
		"vault.hashicorp.com/agent-template-left-delim-db": "[[",
		"vault.hashicorp.com/agent-template-right-delim-db": "]]",
	})
	config.template[0].left_delimiter == "[["
	config.template[0].right_delimiter == "]]"
}

test_configmap_replaces_generated_config if {
	annotations := {
		"vault.hashicorp.com/agent-inject": "true",
		"vault.hashicorp.com/agent-configmap": "agent-config",
		"vault.hashicorp.com/tls-skip-verify": "true",
	}
	mutations := vault_agent.mutate with input as review(annotations, {"containers": [app("app")]})
	count(vault_agent.deny) == 0 with input as review(annotations, {"containers": [app("app")]})
	init := init_value(mutations)
	init.args == ["touch /home/vault/.vault-token && vault agent -config=/vault/configs/config-init.hcl"]
	sidecar_value(mutations).args == ["touch /home/vault/.vault-token && vault agent -config=/vault/configs/config.hcl"]
	[e.name | some e in init.env] == ["NAMESPACE", "HOST_IP", "POD_IP", "VAULT_LOG_LEVEL", "VAULT_LOG_FORMAT", "VAULT_ADDR", "VAULT_SKIP_VERIFY"]
	env_value(init, "VAULT_SKIP_VERIFY") == "true"
	{"name": "vault-config", "mountPath": "/vault/configs", "readOnly": true} in init.volumeMounts
	{"name": "vault-config", "configMap": {"name": "agent-config"}} in edit_at(mutations, ["spec", "volumes"]).value
}

test_extra_secret_and_copied_mounts if {
	spec := {
		"containers": [object.union(app("app"), {"volumeMounts": [sa_mount, {"name": "config", "mountPath": "/etc/app"}]})],
		"volumes": [{"name": "config", "configMap": {"name": "app"}}],
	}
	annotations := object.union(base_annotations, {
		"vault.hashicorp.com/agent-extra-secret": "agent-extra",
		"vault.hashicorp.com/agent-copy-volume-mounts": "app",
	})
	mutations := vault_agent.mutate with input as review(annotations, spec)
	sidecar_value(mutations).volumeMounts == [
		sa_mount, {"name": "home-sidecar", "mountPath": "/home/vault"}, secrets_mount,
		{"name": "extra-secrets", "mountPath": "/vault/custom", "readOnly": true},
		{"name": "config", "mountPath": "/etc/app"},
	]
	{"name": "extra-secrets", "secret": {"secretName": "agent-extra"}} in edit_at(mutations, ["spec", "volumes"]).value
}

test_run_as_same_user if {
	spec := {"containers": [object.union(app("app"), {"securityContext": {"runAsUser": 4242}})]}
	mutations := vault_agent.mutate with input as review(object.union(base_annotations, {"vault.hashicorp.com/agent-run-as-same-user": "true"}), spec)
	sidecar_value(mutations).securityContext.runAsUser == 4242
	init_value(mutations).securityContext.runAsUser == 4242
}

test_run_as_same_user_needs_a_uid if {
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/agent-run-as-same-user\" needs the first container to set a non-zero securityContext.runAsUser"}} with input as pod({"vault.hashicorp.com/agent-run-as-same-user": "true"})
}

test_share_process_namespace if {
	{"op": "set", "path": ["spec", "shareProcessNamespace"], "value": true} in vault_agent.mutate with input as pod({"vault.hashicorp.com/agent-share-process-namespace": "true"})
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/agent-share-process-namespace\" asks for a shared process namespace the pod explicitly disables"}} with input as review(
		object.union(base_annotations, {"vault.hashicorp.com/agent-share-process-namespace": "true"}),
		{"shareProcessNamespace": false, "containers": [app("app")]},
	)
}

test_json_patches_applied_to_their_agent if {
	mutations := vault_agent.mutate with input as pod({
		"vault.hashicorp.com/agent-json-patch": `[{"op":"replace","path":"/resources/limits/memory","value":"512Mi"}]`,
		"vault.hashicorp.com/agent-init-json-patch": `[{"op":"add","path":"/env/-","value":{"name":"EXTRA","value":"1"}}]`,
	})
	sidecar_value(mutations).resources.limits.memory == "512Mi"
	init_value(mutations).resources.limits.memory == "128Mi"
	env_value(init_value(mutations), "EXTRA") == "1"
	not env_value(sidecar_value(mutations), "EXTRA")
}

test_bad_json_patches_denied if {
	vault_agent.deny == {
		{"msg": "annotation \"vault.hashicorp.com/agent-json-patch\" is not a JSON patch (an array of RFC 6902 operations)"},
		{"msg": "annotation \"vault.hashicorp.com/agent-init-json-patch\" does not apply to the \"vault-agent-init\" container"},
	} with input as pod({
		"vault.hashicorp.com/agent-json-patch": `{"op":"add"}`,
		"vault.hashicorp.com/agent-init-json-patch": `[{"op":"replace","path":"/no/such/field","value":1}]`,
	})
}

test_aws_auth_gets_irsa_mount_and_env if {
	irsa := {"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}
	spec := {"containers": [object.union(app("app"), {
		"volumeMounts": [sa_mount, irsa],
		"env": [{"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/web"}, {"name": "OTHER", "value": "x"}],
	})]}
	annotations := object.union(base_annotations, {"vault.hashicorp.com/auth-type": "aws", "vault.hashicorp.com/auth-config-region": "eu-west-1"})
	sidecar := sidecar_value(vault_agent.mutate) with input as review(annotations, spec)
	irsa in sidecar.volumeMounts
	env_value(sidecar, "AWS_ROLE_ARN") == "arn:aws:iam::1:role/web"
	env_value(sidecar, "AWS_REGION") == "eu-west-1"
	not env_value(sidecar, "OTHER")
}

test_patch_applicability if {
	container := {"name": "vault-agent", "env": [{"name": "A"}], "resources": {"limits": {"cpu": "1"}}, "image": "x"}
	vault_agent.patch_applies(container, [{"op": "add", "path": "/env/-", "value": {}}, {"op": "add", "path": "/env/1", "value": {}}])
	vault_agent.patch_applies(container, [{"op": "replace", "path": "/resources/limits/cpu", "value": "2"}, {"op": "remove", "path": "/env/0"}])
	vault_agent.patch_applies(container, [{"op": "add", "path": "/lifecycle", "value": {}}, {"op": "add", "path": "/lifecycle/preStop", "value": {}}])
	vault_agent.patch_applies(container, [{"op": "copy", "from": "/image", "path": "/args"}])
	not vault_agent.patch_applies(container, [{"op": "add", "path": "/env/3", "value": {}}])
	not vault_agent.patch_applies(container, [{"op": "replace", "path": "/resources/requests/cpu", "value": "1"}])
	not vault_agent.patch_applies(container, [{"op": "add", "path": "/image/x", "value": 1}])
	not vault_agent.patch_applies(container, [{"op": "move", "from": "/nothing", "path": "/x"}])
	not vault_agent.patch_applies(container, [{"op": "remove", "path": "/env/0"}, {"op": "replace", "path": "/env/0", "value": {}}])
	not vault_agent.patch_applies(container, [{"op": "remove", "path": "/env/0"}, {"op": "add", "path": "/env/1", "value": {}}])
	vault_agent.patch_applies(container, [{"op": "remove", "path": "/env/0"}, {"op": "replace", "path": "/image", "value": "y"}])
	vault_agent.patch_applies(container, [{"op": "test", "path": "/image", "value": "x"}])
	not vault_agent.patch_applies(container, [{"op": "test", "path": "/image", "value": "z"}])
	not vault_agent.patch_applies(container, [{"op": "replace", "path": "/image", "value": "z"}, {"op": "test", "path": "/image", "value": "z"}])
	not vault_agent.patch_applies(container, [{"op": "add", "path": "/image"}])
	not vault_agent.patch_applies(container, [{"op": "move", "from": "/resources", "path": "/resources/x"}])
	not vault_agent.patch_applies(container, [{"op": "remove", "path": ""}])
}

test_empty_request_namespace_denied if {
	vault_agent.deny == {{"msg": "annotation \"vault.hashicorp.com/agent-request-namespace\" must not be empty"}} with input as pod({"vault.hashicorp.com/agent-request-namespace": ""})
	count(vault_agent.deny) == 0 with input as pod({"vault.hashicorp.com/agent-request-namespace": "elsewhere"})
}
