package portcullis.secret_handling_test

import data.portcullis.secret_handling

# Fake credentials, shaped like the real ones.
pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAfakefakefake\n-----END RSA PRIVATE KEY-----\n"

openssh_pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"

aws_key_id := "AKIAIOSFODNN7EXAMPLE"

jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLWZha2U"

github_classic := "ghp_0123456789abcdefghijklmnopqrstuvwxyz"

github_oauth := "gho_0123456789abcdefghijklmnopqrstuvwxyz"

github_server := "ghs_0123456789abcdefghijklmnopqrstuvwxyz"

github_fine_grained := "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"

slack := "xoxb-1234567890-0987654321-abcdefghijklmnop"

url_with_password := "postgres://app:hunter2canary@db.internal:5432/app"

review(kind, object, namespace, sub) := {"request": {
	"kind": {"kind": kind},
	"operation": "CREATE",
	"subResource": sub,
	"namespace": namespace,
	"object": object,
}}

pod_in(namespace, spec) := review("Pod", {"metadata": {"name": "web"}, "spec": spec}, namespace, "")

pod(spec) := pod_in("default", spec)

with_env(env) := pod({"containers": [{"name": "app", "image": "app:1", "env": env}]})

msgs(denials) := {d.msg | some d in denials}

# Credential-looking names -------------------------------------------------

test_credential_name_with_literal_denied if {
	secret_handling.deny == {{
		"msg": `container "app" env var "DB_PASSWORD" has a credential-like name and a literal value; take it from a Secret (spec.containers[0].env[1].value)`,
		"check": "env_name",
		"container": "app",
		"field": "spec.containers[0].env[1].value",
	}} with input as with_env([{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_PASSWORD", "value": "hunter2canary"}])
}

test_default_name_patterns if {
	every name in ["PASSWORD", "db_passwd", "CLIENT_SECRET", "GITHUB_TOKEN", "API_KEY", "apikey", "SSH_PRIVATE_KEY", "GOOGLE_CREDENTIALS", "AWS_SECRET_ACCESS_KEY", "S3_ACCESS_KEY"] {
		msgs(secret_handling.deny) == {sprintf(`container "app" env var %q has a credential-like name and a literal value; take it from a Secret (spec.containers[0].env[0].value)`, [name])} with input as with_env([{"name": name, "value": "s3cr3t"}])
	}
}

test_default_ignored_names if {
	every name in ["POSTGRES_PASSWORD_FILE", "TOKEN_PATH", "CLIENT_SECRET_NAME", "TOKEN_TTL", "SECRETS_DIR", "PASSWORD_MIN_LENGTH"] {
		count(secret_handling.deny) == 0 with input as with_env([{"name": name, "value": "/run/secrets/x"}])
	}
}

test_harmless_names_admitted if {
	count(secret_handling.deny) == 0 with input as with_env([{"name": "LOG_LEVEL", "value": "debug"}, {"name": "PORT", "value": "8080"}])
}

test_credential_name_from_secret_admitted if {
	count(secret_handling.deny) == 0 with input as with_env([
		{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
		{"name": "API_TOKEN", "value": ""},
	])
}

test_configured_name_patterns if {
	msgs(secret_handling.deny) == {`container "app" env var "DSN" has a credential-like name and a literal value; take it from a Secret (spec.containers[0].env[1].value)`} with input as with_env([{"name": "DB_PASSWORD", "value": "x"}, {"name": "DSN", "value": "x"}])
		with data.portcullis.config.policies.secret_handling.env_name_patterns as [`^DSN$`]
}

# The patterns are matched as one alternation; each keeps its own flags.
test_name_pattern_flags_stay_per_pattern if {
	msgs(secret_handling.deny) == {`container "app" env var "my_foo" has a credential-like name and a literal value; take it from a Secret (spec.containers[0].env[0].value)`} with input as with_env([{"name": "my_foo", "value": "x"}, {"name": "my_bar", "value": "x"}])
		with data.portcullis.config.policies.secret_handling.env_name_patterns as [`(?i)FOO`, `BAR`]
}

test_no_name_patterns_disables_name_rule if {
	count(secret_handling.deny) == 0 with input as with_env([{"name": "DB_PASSWORD", "value": "x"}])
		with data.portcullis.config.policies.secret_handling.env_name_patterns as []
}

test_no_ignored_names if {
	count(secret_handling.deny) == 1 with input as with_env([{"name": "DB_PASSWORD_FILE", "value": "/run/x"}])
		with data.portcullis.config.policies.secret_handling.ignored_env_names as []
}

test_configured_ignored_names if {
	count(secret_handling.deny) == 0 with input as with_env([{"name": "TOKEN_AUDIENCE", "value": "vault"}])
		with data.portcullis.config.policies.secret_handling.ignored_env_names as [`^TOKEN_AUDIENCE$`]
}

# Credential-looking values ------------------------------------------------

value_msg(what) := sprintf(`container "app" env var "CONFIG" has a literal value that looks like %s; take it from a Secret (spec.containers[0].env[0].value)`, [what])

test_credential_values_denied_whatever_the_name if {
	every case in [
		[pem, "a PEM private key"],
		[openssh_pem, "a PEM private key"],
		["-----BEGIN PGP PRIVATE KEY BLOCK-----", "a PEM private key"],
		["-----BEGIN ENCRYPTED PRIVATE KEY-----", "a PEM private key"],
		[aws_key_id, "an AWS access key ID"],
		["ASIAY34FZKBOKMUTVV7A", "an AWS access key ID"],
		[jwt, "a JSON Web Token"],
		[concat("", ["Bearer ", jwt]), "a JSON Web Token"],
		[github_classic, "a GitHub token"],
		[github_oauth, "a GitHub token"],
		[github_server, "a GitHub token"],
		[github_fine_grained, "a GitHub token"],
		[slack, "a Slack token"],
		["xoxp-1234567890-abcdef", "a Slack token"],
		[url_with_password, "a URL with an embedded password"],
		["amqp://guest:guest@rabbitmq:5672/", "a URL with an embedded password"],
		["https://user:p%40ss@example.com/x", "a URL with an embedded password"],
	] {
		secret_handling.deny == {{
			"msg": value_msg(case[1]),
			"check": "env_value",
			"container": "app",
			"field": "spec.containers[0].env[0].value",
		}} with input as with_env([{"name": "CONFIG", "value": case[0]}])
	}
}

test_several_kinds_in_one_value if {
	msgs(secret_handling.deny) == {value_msg("a GitHub token and a URL with an embedded password")} with input as with_env([{"name": "CONFIG", "value": concat("", ["https://x:", github_classic, "@github.com/org/repo.git"])}])
}

test_credential_value_under_credential_name_reported_once if {
	msgs(secret_handling.deny) == {`container "app" env var "GITHUB_TOKEN" has a literal value that looks like a GitHub token; take it from a Secret (spec.containers[0].env[0].value)`} with input as with_env([{"name": "GITHUB_TOKEN", "value": github_classic}])
}

test_harmless_values_admitted if {
	every value in [
		"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
		"-----BEGIN PUBLIC KEY-----",
		"postgres://app:$(DB_PASSWORD)@db.internal:5432/app",
		"postgres://app:${DB_PASSWORD}@db.internal:5432/app",
		"https://user@example.com/x",
		"https://example.com:8443/path@v1",
		"AKIA-not-a-key",
		"eyJonly.one",
		"ghp_short",
		"xoxb-short",
	] {
		count(secret_handling.deny) == 0 with input as with_env([{"name": "CONFIG", "value": value}])
	}
}

test_credential_in_args_and_command if {
	secret_handling.deny == {
		{
			"msg": `container "app" has a literal args entry that looks like a JSON Web Token; take it from a Secret (spec.containers[0].args[1])`,
			"check": "argument_value",
			"container": "app",
			"field": "spec.containers[0].args[1]",
		},
		{
			"msg": `container "app" has a literal command entry that looks like a URL with an embedded password; take it from a Secret (spec.containers[0].command[2])`,
			"check": "argument_value",
			"container": "app",
			"field": "spec.containers[0].command[2]",
		},
	} with input as pod({"containers": [{
		"name": "app",
		"image": "app:1",
		"command": ["psql", "-d", url_with_password],
		"args": ["--verbose", concat("=", ["--token", jwt])],
	}]})
}

# Values never reach a message, not even a prefix of them.
test_messages_never_echo_values if {
	# Every value is at least 12 characters long: its first and last six
	# characters are canaries.
	values := [pem, aws_key_id, jwt, github_classic, github_fine_grained, slack, url_with_password, "hunter2canary"]
	denials := secret_handling.deny with input as with_env([{"name": sprintf("PASSWORD_%d", [i]), "value": v} | some i, v in values])
	count(denials) == count(values)
	leaks := [[d, v] |
		some d in denials
		some v in values
		some fragment in [substring(v, 0, 6), substring(v, count(v) - 6, 6)]
		contains(json.marshal(d), fragment)
	]
	leaks == []
}

# Secrets as files only ----------------------------------------------------

secret_refs := pod_in("payments", {"containers": [{
	"name": "app",
	"image": "app:1",
	"env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}, {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}],
	"envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "api-keys"}}],
}]})

test_secrets_as_files_only if {
	secret_handling.deny == {
		{
			"msg": `container "app" env var "DB_PASSWORD" reads key "password" of Secret "db"; in namespace "payments" Secrets must be mounted as files (a Secret volume or the Vault agent) (spec.containers[0].env[0].valueFrom.secretKeyRef)`,
			"check": "secret_env",
			"container": "app",
			"field": "spec.containers[0].env[0].valueFrom.secretKeyRef",
		},
		{
			"msg": `container "app" takes env vars from Secret "api-keys"; in namespace "payments" Secrets must be mounted as files (a Secret volume or the Vault agent) (spec.containers[0].envFrom[1].secretRef)`,
			"check": "secret_env_from",
			"container": "app",
			"field": "spec.containers[0].envFrom[1].secretRef",
		},
	} with input as secret_refs
		with data.portcullis.config.policies.secret_handling.secrets_as_files_only as ["pay*"]
}

test_secrets_as_files_only_other_namespace if {
	count(secret_handling.deny) == 0 with input as secret_refs
		with data.portcullis.config.policies.secret_handling.secrets_as_files_only as ["default"]
}

test_secret_refs_allowed_by_default if {
	count(secret_handling.deny) == 0 with input as secret_refs
}

# Service account token ----------------------------------------------------

token_pod(automount, annotations) := review("Pod", {"metadata": {"name": "web", "annotations": annotations}, "spec": object.union({"containers": [{"name": "app", "image": "app:1"}]}, automount)}, "default", "")

automount_msg := `Pod "web" mounts its service account token: set spec.automountServiceAccountToken to false (unset means the ServiceAccount's setting, true by default), or opt in with the annotation portcullis.dev/automount-token: "true" (metadata.annotations)`

test_automount_unset_denied if {
	secret_handling.deny == {{
		"msg": automount_msg,
		"check": "automount_token",
		"field": "spec.automountServiceAccountToken",
	}} with input as token_pod({}, {})
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["*"]
}

test_automount_true_denied if {
	msgs(secret_handling.deny) == {automount_msg} with input as token_pod({"automountServiceAccountToken": true}, {"portcullis.dev/automount-token": "yes"})
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["*"]
}

test_automount_false_admitted if {
	count(secret_handling.deny) == 0 with input as token_pod({"automountServiceAccountToken": false}, {})
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["*"]
}

test_automount_opt_in_admitted if {
	count(secret_handling.deny) == 0 with input as token_pod({}, {"portcullis.dev/automount-token": "true"})
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["*"]
}

test_automount_off_by_default if {
	count(secret_handling.deny) == 0 with input as token_pod({}, {})
}

test_automount_namespaces if {
	count(secret_handling.deny) == 0 with input as token_pod({}, {})
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["prod-*"]
}

test_automount_template if {
	msgs(secret_handling.deny) == {`Deployment "api" mounts its service account token: set spec.template.spec.automountServiceAccountToken to false (unset means the ServiceAccount's setting, true by default), or opt in with the annotation portcullis.dev/automount-token: "true" (spec.template.metadata.annotations)`} with input as review("Deployment", {"metadata": {"name": "api"}, "spec": {"template": {"metadata": {"annotations": {"portcullis.dev/automount-token": "false"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}, "default", "")
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["*"]
}

test_automount_template_opt_in if {
	count(secret_handling.deny) == 0 with input as review("CronJob", {"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"portcullis.dev/automount-token": "true"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}}}, "default", "")
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["*"]
}

test_automount_not_checked_on_ephemeral_subresource if {
	count(secret_handling.deny) == 0 with input as review("Pod", {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}, "default", "ephemeralcontainers")
		with data.portcullis.config.policies.secret_handling.require_automount_opt_in as ["*"]
}

# ConfigMaps -------------------------------------------------------------

configmap(values, binary) := review("ConfigMap", {"metadata": {"name": "app-config"}, "data": values, "binaryData": binary}, "default", "")

test_configmap_with_private_key_denied if {
	secret_handling.deny == {{
		"msg": `ConfigMap "app-config" key "tls.key" holds a value that looks like a PEM private key; store it in a Secret (data["tls.key"])`,
		"check": "configmap_data",
		"field": `data["tls.key"]`,
	}} with input as configmap({"tls.key": pem, "tls.crt": "-----BEGIN CERTIFICATE-----"}, {})
}

test_configmap_with_tokens_denied if {
	msgs(secret_handling.deny) == {
		`ConfigMap "app-config" key "settings.yaml" holds a value that looks like a Slack token; store it in a Secret (data["settings.yaml"])`,
		`ConfigMap "app-config" key "DATABASE_URL" holds a value that looks like a URL with an embedded password; store it in a Secret (data["DATABASE_URL"])`,
	} with input as configmap({"settings.yaml": concat("", ["log: info\nslack:\n  token: ", slack, "\n"]), "DATABASE_URL": url_with_password}, {})
}

test_configmap_binary_data_denied if {
	msgs(secret_handling.deny) == {`ConfigMap "app-config" key "id_rsa" holds a value that looks like a PEM private key; store it in a Secret (binaryData["id_rsa"])`} with input as configmap({}, {"id_rsa": base64.encode(pem), "logo.png": "iVBORw0KGgo="})
}

test_configmap_harmless_admitted if {
	count(secret_handling.deny) == 0 with input as configmap({"password_policy": "min_length: 12", "ca.crt": "-----BEGIN CERTIFICATE-----"}, {"blob": "AAEC"})
}

test_configmap_fully_scanned_has_no_warning if {
	count(secret_handling.warn) == 0 with input as configmap({"a": url_with_password, "b": "x"}, {"c": base64.encode(pem)})
}

# Values past max_values (data keys in order, then binaryData keys) are not
# scanned, and a warning says so.
test_configmap_scan_stops_at_max_values if {
	cm := configmap({"a": "harmless", "b": url_with_password, "c": pem}, {"d": base64.encode(pem)})
	msgs(secret_handling.deny) == {`ConfigMap "app-config" key "b" holds a value that looks like a URL with an embedded password; store it in a Secret (data["b"])`} with input as cm
		with data.portcullis.config.policies.secret_handling.max_values as 2
	secret_handling.warn == {{
		"msg": sprintf(`ConfigMap "app-config" was not fully checked for credentials: 2 of 4 values and %d of %d characters scanned (secret_handling max_values, max_bytes)`, [8 + count(url_with_password), ((8 + count(url_with_password)) + count(pem)) + count(base64.encode(pem))]),
		"check": "scan_limit",
		"field": "data",
	}} with input as cm
		with data.portcullis.config.policies.secret_handling.max_values as 2
}

# At most max_bytes characters are scanned in total: each value is cut to
# what is left, so a credential past the budget is not seen.
test_configmap_scan_stops_at_max_bytes if {
	padding := concat("", [x | some _ in numbers.range(1, 30); x := "0123456789"])
	cm := configmap({"a": concat("", [padding, url_with_password]), "b": url_with_password}, {})
	count(secret_handling.deny) == 0 with input as cm
		with data.portcullis.config.policies.secret_handling.max_bytes as 300
	secret_handling.warn == {{
		"msg": sprintf(`ConfigMap "app-config" was not fully checked for credentials: 2 of 2 values and 300 of %d characters scanned (secret_handling max_values, max_bytes)`, [300 + (2 * count(url_with_password))]),
		"check": "scan_limit",
		"field": "data",
	}} with input as cm
		with data.portcullis.config.policies.secret_handling.max_bytes as 300

	# Within the budget the same ConfigMap is denied twice over.
	count(secret_handling.deny) == 2 with input as cm
}

# A binaryData value is cut at a multiple of 4 characters, so what is left
# still decodes; a key in the first part is found.
test_configmap_binary_data_cut_still_decodes if {
	encoded := base64.encode(concat("", [pem, "trailing bytes of the key file, never scanned"]))
	msgs(secret_handling.deny) == {`ConfigMap "app-config" key "id_rsa" holds a value that looks like a PEM private key; store it in a Secret (binaryData["id_rsa"])`} with input as configmap({}, {"id_rsa": encoded})
		with data.portcullis.config.policies.secret_handling.max_bytes as count(base64.encode(pem)) + 2
}

# Vault-only namespaces --------------------------------------------------

secret(type, namespace) := review("Secret", object.union({"metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}}, type), namespace, "")

test_opaque_secret_in_vault_only_namespace_denied if {
	secret_handling.deny == {{
		"msg": `Secret "db" is of type Opaque (an unset type is Opaque); namespace "payments" takes its secrets from Vault only`,
		"check": "opaque_secret",
		"field": "type",
	}} with input as secret({"type": "Opaque"}, "payments")
		with data.portcullis.config.policies.secret_handling.vault_only_namespaces as ["payments"]
}

test_untyped_secret_is_opaque if {
	count(secret_handling.deny) == 1 with input as secret({}, "payments")
		with data.portcullis.config.policies.secret_handling.vault_only_namespaces as ["pay*"]
}

test_typed_secret_in_vault_only_namespace_admitted if {
	every type in ["kubernetes.io/tls", "kubernetes.io/dockerconfigjson", "kubernetes.io/service-account-token"] {
		count(secret_handling.deny) == 0 with input as secret({"type": type}, "payments")
			with data.portcullis.config.policies.secret_handling.vault_only_namespaces as ["payments"]
	}
}

test_opaque_secret_elsewhere_admitted if {
	count(secret_handling.deny) == 0 with input as secret({"type": "Opaque"}, "default")
		with data.portcullis.config.policies.secret_handling.vault_only_namespaces as ["payments"]
}

# Coverage of kinds and container lists -----------------------------------

spec := {
	"initContainers": [{"name": "init", "image": "busybox:1", "env": [{"name": "API_KEY", "value": "k"}]}],
	"containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": aws_key_id}]}],
}

kind_msgs(prefix) := {
	sprintf(`container "init" env var "API_KEY" has a credential-like name and a literal value; take it from a Secret (%s.initContainers[0].env[0].value)`, [prefix]),
	sprintf(`container "app" env var "A" has a literal value that looks like an AWS access key ID; take it from a Secret (%s.containers[0].env[0].value)`, [prefix]),
}

template := {"metadata": {}, "spec": spec}

test_workload_templates if {
	every kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"] {
		msgs(secret_handling.deny) == kind_msgs("spec.template.spec") with input as review(kind, {"metadata": {"name": "w"}, "spec": {"template": template}}, "default", "")
	}
}

test_cronjob_and_podtemplate if {
	msgs(secret_handling.deny) == kind_msgs("spec.jobTemplate.spec.template.spec") with input as review("CronJob", {"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": template}}}}, "default", "")
	msgs(secret_handling.deny) == kind_msgs("template.spec") with input as review("PodTemplate", {"metadata": {"name": "t"}, "template": template}, "default", "")
}

ephemeral := object.union(spec, {"ephemeralContainers": [{"name": "debug", "image": "busybox:1", "env": [{"name": "TOKEN", "value": "t"}]}]})

test_pod_with_ephemeral_containers if {
	msgs(secret_handling.deny) == kind_msgs("spec") | {`container "debug" env var "TOKEN" has a credential-like name and a literal value; take it from a Secret (spec.ephemeralContainers[0].env[0].value)`} with input as pod(ephemeral)
}

test_ephemeralcontainers_subresource_checks_only_ephemeral if {
	msgs(secret_handling.deny) == {`container "debug" env var "TOKEN" has a credential-like name and a literal value; take it from a Secret (spec.ephemeralContainers[0].env[0].value)`} with input as review("Pod", {"metadata": {"name": "web"}, "spec": ephemeral}, "default", "ephemeralcontainers")
}

test_delete_and_other_subresources_ignored if {
	count(secret_handling.deny) == 0 with input as object.union(pod(spec), {"request": {"operation": "DELETE"}})
	count(secret_handling.deny) == 0 with input as review("Pod", {"metadata": {"name": "web"}, "spec": spec}, "default", "status")
}

# config.yaml documents the defaults; the Rego falls back to the same values
# when it is not loaded. `opa test policies/` loads config.yaml at the data
# root (data.policies...); another loader may not, and then there is nothing
# to compare.
builtin_defaults := {
	"env_name_patterns": secret_handling.default_env_name_patterns,
	"ignored_env_names": secret_handling.default_ignored_env_names,
	"secrets_as_files_only": [],
	"require_automount_opt_in": [],
	"vault_only_namespaces": [],
	"max_values": secret_handling.default_max_values,
	"max_bytes": secret_handling.default_max_bytes,
}

yaml_settings := data.policies.secret_handling if {
	data.policies.secret_handling
} else := builtin_defaults

test_config_yaml_matches_rego_defaults if {
	yaml_settings == builtin_defaults
}
