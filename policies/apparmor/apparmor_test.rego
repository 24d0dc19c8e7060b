package portcullis.apparmor_test

import data.portcullis.apparmor

review(kind, object, sub) := {"request": {
	"kind": {"kind": kind},
	"operation": "CREATE",
	"subResource": sub,
	"namespace": "default",
	"object": object,
}}

# pod(annotations, spec) is a Pod named web.
pod(annotations, spec) := review("Pod", {"metadata": {"name": "web", "annotations": annotations}, "spec": spec}, "")

# app(sc) is a spec with one container "app" with the given securityContext.
app(sc) := {"containers": [{"name": "app", "image": "app:1", "securityContext": sc}]}

profile(type) := {"appArmorProfile": {"type": type}}

localhost(name) := {"appArmorProfile": {"type": "Localhost", "localhostProfile": name}}

key(name) := concat("", ["container.apparmor.security.beta.kubernetes.io/", name])

msgs(denials) := {d.msg | some d in denials}

allowed := ["k8s-nginx", "team-*"]

# Admitted ---------------------------------------------------------------

test_no_profile_admitted_by_default if {
	count(apparmor.deny) == 0 with input as pod({}, app({}))
}

test_runtime_default_admitted if {
	count(apparmor.deny) == 0 with input as pod({key("app"): "runtime/default"}, app(profile("RuntimeDefault")))
}

test_allowed_localhost_admitted if {
	count(apparmor.deny) == 0 with input as pod({key("app"): "localhost/team-api"}, app(localhost("team-api")))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_pod_level_runtime_default_admitted if {
	count(apparmor.deny) == 0 with input as pod({}, object.union(app({}), {"securityContext": profile("RuntimeDefault")}))
}

# Unconfined -------------------------------------------------------------

test_container_field_unconfined_denied if {
	apparmor.deny == {{
		"msg": `container "app" AppArmor profile: Unconfined is not allowed (spec.containers[0].securityContext.appArmorProfile)`,
		"check": "container_profile",
		"container": "app",
		"field": "spec.containers[0].securityContext.appArmorProfile",
	}} with input as pod({}, app(profile("Unconfined")))
}

test_pod_field_unconfined_denied if {
	apparmor.deny == {{
		"msg": `pod AppArmor profile: Unconfined is not allowed (spec.securityContext.appArmorProfile)`,
		"check": "pod_profile",
		"field": "spec.securityContext.appArmorProfile",
	}} with input as pod({}, object.union(app({}), {"securityContext": profile("Unconfined")}))
}

test_annotation_unconfined_denied if {
	apparmor.deny == {{
		"msg": `container "app" AppArmor annotation: Unconfined is not allowed (metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"])`,
		"check": "annotation_profile",
		"container": "app",
		"field": `metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"]`,
	}} with input as pod({key("app"): "unconfined"}, app({}))
}

# Localhost allowlist ------------------------------------------------------

test_localhost_not_allowed_by_default if {
	msgs(apparmor.deny) == {`container "app" AppArmor profile: Localhost profile "custom" is not allowed (allowed: none) (spec.containers[0].securityContext.appArmorProfile)`} with input as pod({}, app(localhost("custom")))
}

test_localhost_not_in_allowlist if {
	msgs(apparmor.deny) == {`container "app" AppArmor profile: Localhost profile "team" is not allowed (allowed: "k8s-nginx", "team-*") (spec.containers[0].securityContext.appArmorProfile)`} with input as pod({}, app(localhost("team")))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_localhost_annotation_not_in_allowlist if {
	msgs(apparmor.deny) == {`container "app" AppArmor annotation: Localhost profile "other" is not allowed (allowed: "k8s-nginx", "team-*") (metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"])`} with input as pod({key("app"): "localhost/other"}, app({}))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_localhost_annotation_allowed if {
	count(apparmor.deny) == 0 with input as pod({key("app"): "localhost/k8s-nginx"}, app({}))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_pod_field_localhost_not_allowed if {
	msgs(apparmor.deny) == {`pod AppArmor profile: Localhost profile "x" is not allowed (allowed: "k8s-nginx", "team-*") (spec.securityContext.appArmorProfile)`} with input as pod({}, object.union(app({}), {"securityContext": localhost("x")}))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_localhost_without_profile_name if {
	msgs(apparmor.deny) == {`container "app" AppArmor profile: type Localhost needs a localhostProfile (spec.containers[0].securityContext.appArmorProfile)`} with input as pod({}, app(profile("Localhost")))
}

# Invalid values -----------------------------------------------------------

test_unknown_field_type if {
	msgs(apparmor.deny) == {`container "app" AppArmor profile: unknown type "Custom" (RuntimeDefault, Localhost or Unconfined) (spec.containers[0].securityContext.appArmorProfile)`} with input as pod({}, app(profile("Custom")))
}

test_invalid_annotation_values if {
	every value in ["docker/default", "localhost/", "RuntimeDefault", ""] {
		msgs(apparmor.deny) == {sprintf(`container "app" AppArmor annotation: %q is not a valid profile (runtime/default, localhost/<profile> or unconfined) (metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"])`, [value])} with input as pod({key("app"): value}, app({}))
	}
}

# Annotations naming no container ------------------------------------------

test_annotation_for_missing_container if {
	apparmor.deny == {{
		"msg": `AppArmor annotation names container "ghost", which the pod does not have (metadata.annotations["container.apparmor.security.beta.kubernetes.io/ghost"])`,
		"check": "annotation_container",
		"container": "ghost",
		"field": `metadata.annotations["container.apparmor.security.beta.kubernetes.io/ghost"]`,
	}} with input as pod({key("ghost"): "runtime/default", key("app"): "runtime/default"}, app({}))
}

test_annotations_for_init_and_ephemeral_containers_exist if {
	count(apparmor.deny) == 0 with input as pod(
		{key("init"): "runtime/default", key("debug"): "runtime/default"},
		{
			"initContainers": [{"name": "init", "image": "x:1"}],
			"containers": [{"name": "app", "image": "x:1"}],
			"ephemeralContainers": [{"name": "debug", "image": "x:1"}],
		},
	)
}

test_unrelated_annotations_ignored if {
	count(apparmor.deny) == 0 with input as pod({"seccomp.security.alpha.kubernetes.io/pod": "runtime/default", "apparmor.example.com/x": "y"}, app({}))
}

# Annotation and field disagreeing ---------------------------------------

mismatch_msg(value, describe) := sprintf(`container "app" AppArmor annotation %q disagrees with %s (metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"])`, [value, describe])

test_annotation_disagrees_with_container_field if {
	apparmor.deny == {{
		"msg": mismatch_msg("runtime/default", `type Localhost with localhostProfile "k8s-nginx"`),
		"check": "annotation_mismatch",
		"container": "app",
		"field": `metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"]`,
	}} with input as pod({key("app"): "runtime/default"}, app(localhost("k8s-nginx")))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_annotation_disagrees_on_localhost_name if {
	msgs(apparmor.deny) == {mismatch_msg("localhost/team-a", `type Localhost with localhostProfile "team-b"`)} with input as pod({key("app"): "localhost/team-a"}, app(localhost("team-b")))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_annotation_disagrees_with_pod_field if {
	msgs(apparmor.deny) == {mismatch_msg("localhost/k8s-nginx", "type RuntimeDefault")} with input as pod({key("app"): "localhost/k8s-nginx"}, object.union(app({}), {"securityContext": profile("RuntimeDefault")}))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_container_field_wins_over_pod_field if {
	# The pod says RuntimeDefault, the container says Localhost k8s-nginx:
	# the annotation must match the container's field.
	count(apparmor.deny) == 0 with input as pod({key("app"): "localhost/k8s-nginx"}, object.union(app(localhost("k8s-nginx")), {"securityContext": profile("RuntimeDefault")}))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
	msgs(apparmor.deny) == {mismatch_msg("runtime/default", `type Localhost with localhostProfile "k8s-nginx"`)} with input as pod({key("app"): "runtime/default"}, object.union(app(localhost("k8s-nginx")), {"securityContext": profile("RuntimeDefault")}))
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_unconfined_both_ways_reports_each_form if {
	msgs(apparmor.deny) == {
		`container "app" AppArmor profile: Unconfined is not allowed (spec.containers[0].securityContext.appArmorProfile)`,
		`container "app" AppArmor annotation: Unconfined is not allowed (metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"])`,
	} with input as pod({key("app"): "unconfined"}, app(profile("Unconfined")))
}

test_annotation_vs_unconfined_field if {
	msgs(apparmor.deny) == {
		`container "app" AppArmor profile: Unconfined is not allowed (spec.containers[0].securityContext.appArmorProfile)`,
		mismatch_msg("runtime/default", "type Unconfined"),
	} with input as pod({key("app"): "runtime/default"}, app(profile("Unconfined")))
}

# profile_required -------------------------------------------------------

required_msg(name, path) := sprintf(`container %q has no AppArmor profile: set %s.securityContext.appArmorProfile (or spec.securityContext.appArmorProfile) to RuntimeDefault or an allowed Localhost profile`, [name, path])

test_profile_required_denies_missing if {
	apparmor.deny == {{
		"msg": required_msg("app", "spec.containers[0]"),
		"check": "profile_required",
		"container": "app",
		"field": "spec.containers[0].securityContext.appArmorProfile",
	}} with input as pod({}, app({}))
		with data.portcullis.config.policies.apparmor.profile_required as true
}

test_profile_required_satisfied_by_each_form if {
	every case in [
		pod({}, app(profile("RuntimeDefault"))),
		pod({}, object.union(app({}), {"securityContext": profile("RuntimeDefault")})),
		pod({key("app"): "runtime/default"}, app({})),
		pod({key("app"): "localhost/k8s-nginx"}, app({})),
		pod({}, app(localhost("team-x"))),
	] {
		count(apparmor.deny) == 0 with input as case
			with data.portcullis.config.policies.apparmor as {"profile_required": true, "allowed_localhost_profiles": allowed}
	}
}

test_profile_required_all_lists if {
	msgs(apparmor.deny) == {
		required_msg("init", "spec.initContainers[0]"),
		required_msg("debug", "spec.ephemeralContainers[0]"),
	} with input as pod({key("app"): "runtime/default"}, {
		"initContainers": [{"name": "init", "image": "x:1"}],
		"containers": [{"name": "app", "image": "x:1"}],
		"ephemeralContainers": [{"name": "debug", "image": "x:1"}],
	})
		with data.portcullis.config.policies.apparmor.profile_required as true
}

# Kinds and subresources -------------------------------------------------

template := {
	"metadata": {"annotations": {key("ghost"): "runtime/default", key("app"): "unconfined"}},
	"spec": {"initContainers": [{"name": "init", "image": "x:1", "securityContext": profile("Unconfined")}], "containers": [{"name": "app", "image": "x:1"}]},
}

template_msgs(meta, spec) := {
	sprintf(`AppArmor annotation names container "ghost", which the pod does not have (%s.annotations["container.apparmor.security.beta.kubernetes.io/ghost"])`, [meta]),
	sprintf(`container "app" AppArmor annotation: Unconfined is not allowed (%s.annotations["container.apparmor.security.beta.kubernetes.io/app"])`, [meta]),
	sprintf(`container "init" AppArmor profile: Unconfined is not allowed (%s.initContainers[0].securityContext.appArmorProfile)`, [spec]),
}

test_workload_templates if {
	every kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"] {
		msgs(apparmor.deny) == template_msgs("spec.template.metadata", "spec.template.spec") with input as review(kind, {"metadata": {"name": "w"}, "spec": {"template": template}}, "")
	}
}

test_cronjob_and_podtemplate if {
	msgs(apparmor.deny) == template_msgs("spec.jobTemplate.spec.template.metadata", "spec.jobTemplate.spec.template.spec") with input as review("CronJob", {"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": template}}}}, "")
	msgs(apparmor.deny) == template_msgs("template.metadata", "template.spec") with input as review("PodTemplate", {"metadata": {"name": "t"}, "template": template}, "")
}

debug_pod := {
	"metadata": {"name": "web", "annotations": {key("ghost"): "runtime/default", key("debug"): "runtime/default"}},
	"spec": {
		"containers": [{"name": "app", "image": "x:1", "securityContext": profile("Unconfined")}],
		"ephemeralContainers": [{"name": "debug", "image": "x:1", "securityContext": localhost("k8s-nginx")}],
	},
}

test_ephemeralcontainers_subresource_checks_only_ephemeral if {
	msgs(apparmor.deny) == {`container "debug" AppArmor annotation "runtime/default" disagrees with type Localhost with localhostProfile "k8s-nginx" (metadata.annotations["container.apparmor.security.beta.kubernetes.io/debug"])`} with input as review("Pod", debug_pod, "ephemeralcontainers")
		with data.portcullis.config.policies.apparmor.allowed_localhost_profiles as allowed
}

test_ephemeral_container_field_in_pod if {
	msgs(apparmor.deny) == {
		`AppArmor annotation names container "ghost", which the pod does not have (metadata.annotations["container.apparmor.security.beta.kubernetes.io/ghost"])`,
		`container "app" AppArmor profile: Unconfined is not allowed (spec.containers[0].securityContext.appArmorProfile)`,
		`container "debug" AppArmor profile: Localhost profile "k8s-nginx" is not allowed (allowed: none) (spec.ephemeralContainers[0].securityContext.appArmorProfile)`,
		`container "debug" AppArmor annotation "runtime/default" disagrees with type Localhost with localhostProfile "k8s-nginx" (metadata.annotations["container.apparmor.security.beta.kubernetes.io/debug"])`,
	} with input as review("Pod", debug_pod, "")
}

test_delete_and_other_subresources_ignored if {
	count(apparmor.deny) == 0 with input as object.union(review("Pod", debug_pod, ""), {"request": {"operation": "DELETE"}})
	count(apparmor.deny) == 0 with input as review("Pod", debug_pod, "status")
}

# config.yaml documents the defaults; the Rego falls back to the same values
# when it is not loaded. `opa test policies/` loads config.yaml at the data
# root (data.policies...); another loader may not, and then there is nothing
# to compare.
builtin_defaults := {"allowed_localhost_profiles": [], "profile_required": false}

yaml_settings := data.policies.apparmor if {
	data.policies.apparmor
} else := builtin_defaults

test_config_yaml_matches_rego_defaults if {
	yaml_settings == builtin_defaults
	apparmor.allowed_localhost_profiles == builtin_defaults.allowed_localhost_profiles
	apparmor.profile_required == builtin_defaults.profile_required
}
