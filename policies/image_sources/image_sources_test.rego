package portcullis.image_sources_test

import data.portcullis.image_sources

digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

review(kind, object, namespace, sub) := {"request": {
	"kind": {"kind": kind},
	"operation": "CREATE",
	"subResource": sub,
	"namespace": namespace,
	"object": object,
}}

pod_in(namespace, spec) := review("Pod", {"metadata": {"name": "web"}, "spec": spec}, namespace, "")

pod(spec) := pod_in("default", spec)

# one(image) is a pod with one container "app" running image.
one(image) := pod({"containers": [{"name": "app", "image": image}]})

msgs(denials) := {d.msg | some d in denials}

# Defaults ---------------------------------------------------------------

test_tagged_image_admitted if {
	count(image_sources.deny) == 0 with input as one("nginx:1.27")
}

test_digest_only_image_admitted if {
	count(image_sources.deny) == 0 with input as one(concat("@", ["nginx", digest]))
}

test_untagged_denied if {
	image_sources.deny == {{
		"msg": `container "app" image "nginx" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (spec.containers[0].image)`,
		"check": "untagged",
		"container": "app",
		"field": "spec.containers[0].image",
	}} with input as one("nginx")
}

test_latest_denied if {
	image_sources.deny == {{
		"msg": `container "app" image "registry.example.com/app:latest" uses the mutable tag "latest"; pin a version tag or a digest (spec.containers[0].image)`,
		"check": "latest_tag",
		"container": "app",
		"field": "spec.containers[0].image",
	}} with input as one("registry.example.com/app:latest")
}

test_latest_with_digest_admitted if {
	count(image_sources.deny) == 0 with input as one(concat("@", ["nginx:latest", digest]))
}

test_latest_allowed_when_configured if {
	count(image_sources.deny) == 0 with input as one("nginx:latest")
		with data.portcullis.config.policies.image_sources.deny_latest as false
}

test_untagged_allowed_when_configured if {
	count(image_sources.deny) == 0 with input as one("nginx")
		with data.portcullis.config.policies.image_sources.deny_untagged as false
}

test_credentials_in_an_invalid_reference_are_redacted if {
	msgs(image_sources.deny) == {`container "app" image "REDACTED@registry.example.com/app:1.0" is not a valid image reference (spec.containers[0].image)`} with input as one("bot:CANARY-pw@registry.example.com/app:1.0")
}

test_invalid_reference_denied if {
	msgs(image_sources.deny) == {`container "app" image "Nginx:1.27" is not a valid image reference (spec.containers[0].image)`} with input as one("Nginx:1.27")
}

# Upstream parses "my_registry.com/app:1" with an empty registry; nothing can
# pull that, so it is as invalid as a reference that does not parse.
test_reference_without_valid_registry_denied if {
	image_sources.deny == {{
		"msg": `container "app" image "my_registry.com/app:1" is not a valid image reference (spec.containers[0].image)`,
		"check": "invalid_reference",
		"container": "app",
		"field": "spec.containers[0].image",
	}} with input as one("my_registry.com/app:1")
}

test_missing_image_left_to_api_validation if {
	count(image_sources.deny) == 0 with input as pod({"containers": [{"name": "app"}]})
}

# Allow and deny lists -----------------------------------------------------

allowed := ["registry.example.com/team", "gcr.io/distroless", "docker.io/library/busybox", "localhost:5000"]

allowed_msg(image) := sprintf(`container "app" image %q is not from an allowed registry or repository (spec.containers[0].image); allowed: "registry.example.com/team", "gcr.io/distroless", "docker.io/library/busybox", "localhost:5000"`, [image])

test_allowlist_admits_repository_prefix if {
	every image in [
		"registry.example.com/team/api:1.0",
		"registry.example.com/team/sub/worker:2",
		"REGISTRY.example.com/team/api:1.0",
		"gcr.io/distroless/static:nonroot",
		"busybox:1.36",
		"index.docker.io/library/busybox:1.36",
		"localhost:5000/anything/at/all:1",
	] {
		count(image_sources.deny) == 0 with input as one(image)
			with data.portcullis.config.policies.image_sources.allowed as allowed
	}
}

test_allowlist_respects_path_boundaries if {
	every image in [
		"registry.example.com/team-evil/x:1",
		"registry.example.com/teamx:1",
		"registry.example.com/other/team/x:1",
		"registry.example.com.evil.io/team/x:1",
		"gcr.io/distroless-fake/static:1",
		"busybox-evil:1",
		"docker.io/library/busyboxx:1",
		"localhost:5001/app:1",
		"localhost/app:1",
	] {
		msgs(image_sources.deny) == {allowed_msg(image)} with input as one(image)
			with data.portcullis.config.policies.image_sources.allowed as allowed
	}
}

test_allowlist_entry_with_trailing_slash if {
	count(image_sources.deny) == 0 with input as one("registry.example.com/team/api:1")
		with data.portcullis.config.policies.image_sources.allowed as ["registry.example.com/team/"]
}

test_allowlist_entry_is_exact_repository if {
	count(image_sources.deny) == 0 with input as one("registry.example.com/team/api:1")
		with data.portcullis.config.policies.image_sources.allowed as ["registry.example.com/team/api"]
}

test_docker_hub_entry_index_alias if {
	count(image_sources.deny) == 0 with input as one("nginx:1.27")
		with data.portcullis.config.policies.image_sources.allowed as ["index.docker.io/library"]
}

test_unallowed_source_object if {
	image_sources.deny == {{
		"msg": `container "app" image "quay.io/x/y:1" is not from an allowed registry or repository (spec.containers[0].image); allowed: "gcr.io"`,
		"check": "unallowed_source",
		"container": "app",
		"field": "spec.containers[0].image",
	}} with input as one("quay.io/x/y:1")
		with data.portcullis.config.policies.image_sources.allowed as ["gcr.io"]
}

test_denylist if {
	image_sources.deny == {{
		"msg": `container "app" image "registry.example.com/team/legacy/api:1" comes from "registry.example.com/team/legacy", which is denied (spec.containers[0].image)`,
		"check": "denied_source",
		"container": "app",
		"field": "spec.containers[0].image",
	}} with input as one("registry.example.com/team/legacy/api:1")
		with data.portcullis.config.policies.image_sources.allowed as ["registry.example.com/team"]
		with data.portcullis.config.policies.image_sources.denied as ["registry.example.com/team/legacy"]
}

test_denylist_respects_path_boundaries if {
	count(image_sources.deny) == 0 with input as one("registry.example.com/team/legacy-v2/api:1")
		with data.portcullis.config.policies.image_sources.denied as ["registry.example.com/team/legacy"]
}

test_denylist_whole_registry if {
	msgs(image_sources.deny) == {`container "app" image "nginx:1.27" comes from "docker.io", which is denied (spec.containers[0].image)`} with input as one("nginx:1.27")
		with data.portcullis.config.policies.image_sources.denied as ["docker.io"]
}

# Namespace overrides ------------------------------------------------------

overrides := [
	{"namespaces": ["payments"], "allowed": ["registry.example.com/payments"], "require_digest": true},
	{"namespaces": ["team-*"], "allowed": ["registry.example.com/teams"]},
	{"namespaces": ["team-a"], "allowed": ["never.example.com"]},
]

test_override_replaces_allowlist if {
	msgs(image_sources.deny) == {`container "app" image "registry.example.com/shared/api:1" is not from an allowed registry or repository (spec.containers[0].image); allowed: "registry.example.com/teams"`} with input as pod_in("team-a", {"containers": [{"name": "app", "image": "registry.example.com/shared/api:1"}]})
		with data.portcullis.config.policies.image_sources as {"allowed": ["registry.example.com/shared"], "overrides": overrides}
}

test_override_first_match_wins if {
	count(image_sources.deny) == 0 with input as pod_in("team-a", {"containers": [{"name": "app", "image": "registry.example.com/teams/api:1"}]})
		with data.portcullis.config.policies.image_sources as {"allowed": ["registry.example.com/shared"], "overrides": overrides}
}

test_override_not_matching_keeps_global if {
	count(image_sources.deny) == 0 with input as pod_in("default", {"containers": [{"name": "app", "image": "registry.example.com/shared/api:1"}]})
		with data.portcullis.config.policies.image_sources as {"allowed": ["registry.example.com/shared"], "overrides": overrides}
}

test_override_keeps_unset_keys if {
	# team-* sets no deny_latest: the global default (true) still applies.
	msgs(image_sources.deny) == {`container "app" image "registry.example.com/teams/api:latest" uses the mutable tag "latest"; pin a version tag or a digest (spec.containers[0].image)`} with input as pod_in("team-b", {"containers": [{"name": "app", "image": "registry.example.com/teams/api:latest"}]})
		with data.portcullis.config.policies.image_sources as {"overrides": overrides}
}

test_digest_required_per_namespace if {
	image_sources.deny == {{
		"msg": `container "app" image "registry.example.com/payments/api:1.4" must be pinned by digest (name@sha256:...) in namespace "payments" (spec.containers[0].image)`,
		"check": "digest_required",
		"container": "app",
		"field": "spec.containers[0].image",
	}} with input as pod_in("payments", {"containers": [{"name": "app", "image": "registry.example.com/payments/api:1.4"}]})
		with data.portcullis.config.policies.image_sources as {"overrides": overrides}
}

test_digest_required_admits_digest if {
	count(image_sources.deny) == 0 with input as pod_in("payments", {"containers": [{"name": "app", "image": concat("@", ["registry.example.com/payments/api:1.4", digest])}]})
		with data.portcullis.config.policies.image_sources as {"overrides": overrides}
}

test_digest_required_globally if {
	msgs(image_sources.deny) == {`container "app" image "nginx:1.27" must be pinned by digest (name@sha256:...) in namespace "default" (spec.containers[0].image)`} with input as one("nginx:1.27")
		with data.portcullis.config.policies.image_sources.require_digest as true
}

test_namespace_from_object_when_request_has_none if {
	count(image_sources.deny) == 1 with input as review(
		"Pod",
		{"metadata": {"name": "web", "namespace": "payments"}, "spec": {"containers": [{"name": "app", "image": "registry.example.com/payments/api:1"}]}},
		"",
		"",
	)
		with data.portcullis.config.policies.image_sources as {"overrides": overrides}
}

# Pull policy --------------------------------------------------------------

pull_always(container) := pod({"containers": [container]})

test_pull_always_required_for_tag if {
	image_sources.deny == {{
		"msg": `container "app" image "nginx:1.27" uses a mutable tag, so spec.containers[0].imagePullPolicy must be "Always" (is "IfNotPresent")`,
		"check": "pull_policy",
		"container": "app",
		"field": "spec.containers[0].imagePullPolicy",
	}} with input as pull_always({"name": "app", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent"})
		with data.portcullis.config.policies.image_sources.require_pull_always as true
}

test_pull_always_unset_defaults_to_if_not_present if {
	msgs(image_sources.deny) == {`container "app" image "nginx:1.27" uses a mutable tag, so spec.containers[0].imagePullPolicy must be "Always" (is "IfNotPresent")`} with input as pull_always({"name": "app", "image": "nginx:1.27"})
		with data.portcullis.config.policies.image_sources.require_pull_always as true
}

test_pull_always_never_denied if {
	msgs(image_sources.deny) == {`container "app" image "nginx:1.27" uses a mutable tag, so spec.containers[0].imagePullPolicy must be "Always" (is "Never")`} with input as pull_always({"name": "app", "image": "nginx:1.27", "imagePullPolicy": "Never"})
		with data.portcullis.config.policies.image_sources.require_pull_always as true
}

test_pull_always_admitted if {
	count(image_sources.deny) == 0 with input as pull_always({"name": "app", "image": "nginx:1.27", "imagePullPolicy": "Always"})
		with data.portcullis.config.policies.image_sources.require_pull_always as true
}

test_pull_always_unset_latest_defaults_to_always if {
	count(image_sources.deny) == 0 with input as pull_always({"name": "app", "image": "nginx:latest"})
		with data.portcullis.config.policies.image_sources as {"require_pull_always": true, "deny_latest": false}
}

test_pull_always_not_needed_with_digest if {
	count(image_sources.deny) == 0 with input as pull_always({"name": "app", "image": concat("@", ["nginx:1.27", digest]), "imagePullPolicy": "IfNotPresent"})
		with data.portcullis.config.policies.image_sources.require_pull_always as true
}

# Coverage of kinds and container lists -----------------------------------

bad_spec := {
	"initContainers": [{"name": "init", "image": "busybox"}],
	"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "side", "image": "envoy:latest"}],
}

workload_msgs(prefix) := {
	sprintf(`container "init" image "busybox" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (%s.initContainers[0].image)`, [prefix]),
	sprintf(`container "side" image "envoy:latest" uses the mutable tag "latest"; pin a version tag or a digest (%s.containers[1].image)`, [prefix]),
}

template := {"metadata": {"labels": {"app": "web"}}, "spec": bad_spec}

test_pod_all_lists if {
	msgs(image_sources.deny) == workload_msgs("spec") with input as pod(bad_spec)
}

test_workload_templates if {
	every kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"] {
		msgs(image_sources.deny) == workload_msgs("spec.template.spec") with input as review(kind, {"metadata": {"name": "web"}, "spec": {"template": template}}, "default", "")
	}
}

test_cronjob_template if {
	msgs(image_sources.deny) == workload_msgs("spec.jobTemplate.spec.template.spec") with input as review("CronJob", {"metadata": {"name": "nightly"}, "spec": {"jobTemplate": {"spec": {"template": template}}}}, "default", "")
}

test_podtemplate if {
	msgs(image_sources.deny) == workload_msgs("template.spec") with input as review("PodTemplate", {"metadata": {"name": "t"}, "template": template}, "default", "")
}

ephemeral_pod := {
	"containers": [{"name": "app", "image": "nginx"}],
	"ephemeralContainers": [{"name": "debugger", "image": "busybox:latest", "targetContainerName": "app"}],
}

test_ephemeral_containers_in_pod if {
	msgs(image_sources.deny) == {
		`container "app" image "nginx" has neither a tag nor a digest, so it runs "latest"; pin a version tag or a digest (spec.containers[0].image)`,
		`container "debugger" image "busybox:latest" uses the mutable tag "latest"; pin a version tag or a digest (spec.ephemeralContainers[0].image)`,
	} with input as pod(ephemeral_pod)
}

test_ephemeralcontainers_subresource_checks_only_ephemeral if {
	msgs(image_sources.deny) == {`container "debugger" image "busybox:latest" uses the mutable tag "latest"; pin a version tag or a digest (spec.ephemeralContainers[0].image)`} with input as review("Pod", {"metadata": {"name": "web"}, "spec": ephemeral_pod}, "default", "ephemeralcontainers")
}

test_other_subresources_ignored if {
	count(image_sources.deny) == 0 with input as review("Pod", {"metadata": {"name": "web"}, "spec": ephemeral_pod}, "default", "status")
}

test_delete_ignored if {
	count(image_sources.deny) == 0 with input as {"request": {"kind": {"kind": "Pod"}, "operation": "DELETE", "subResource": "", "namespace": "default", "object": null}}
}

test_update_checked if {
	count(image_sources.deny) == 1 with input as object.union(one("nginx"), {"request": {"operation": "UPDATE"}})
}

test_other_kinds_ignored if {
	count(image_sources.deny) == 0 with input as review("ConfigMap", {"metadata": {"name": "c"}, "data": {"image": "nginx"}}, "default", "")
}

# config.yaml documents the defaults; the Rego falls back to the same values
# when it is not loaded. `opa test policies/` loads config.yaml at the data
# root (data.policies...); another loader may not, and then there is nothing
# to compare.
yaml_settings := data.policies.image_sources if {
	data.policies.image_sources
} else := image_sources.defaults

test_config_yaml_matches_rego_defaults if {
	object.filter(yaml_settings, image_sources.setting_names) == image_sources.defaults
	object.get(yaml_settings, "overrides", []) == []
}
