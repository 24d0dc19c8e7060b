package portcullis.security_context_test

import data.portcullis.security_context

review(pod) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"operation": "CREATE",
	"subResource": "",
	"namespace": "default",
	"object": object.union({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}, pod),
}}

in_namespace(pod, ns) := json.patch(review(pod), [{"op": "replace", "path": "/request/namespace", "value": ns}])

app(name) := {"name": name, "image": "nginx:1.27"}

pod_defaults := {
	{"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true},
	{"op": "default", "path": ["spec", "securityContext", "seccompProfile"], "value": {"type": "RuntimeDefault"}},
}

container_defaults(field, name) := {
	{"op": "default", "path": ["spec", field, {"name": name}, "securityContext", "allowPrivilegeEscalation"], "value": false},
	{"op": "append", "path": ["spec", field, {"name": name}, "securityContext", "capabilities", "drop"], "value": ["ALL"]},
}

hardened_container(name) := {
	"name": name,
	"image": "nginx:1.27",
	"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
}

hardened_pod_sc := {
	"runAsNonRoot": true,
	"seccompProfile": {"type": "RuntimeDefault"},
}

test_bare_pod_gets_every_default if {
	expected := (pod_defaults | container_defaults("containers", "app")) | container_defaults("initContainers", "init")
	security_context.mutate == expected with input as review({"spec": {
		"initContainers": [app("init")],
		"containers": [app("app")],
	}})
}

test_hardened_pod_untouched if {
	count(security_context.mutate) == 0 with input as review({"spec": {
		"securityContext": hardened_pod_sc,
		"initContainers": [hardened_container("init")],
		"containers": [hardened_container("app"), hardened_container("side")],
	}})
}

test_explicit_values_never_overridden if {
	count(security_context.mutate) == 0 with input as review({"spec": {
		"securityContext": {"runAsNonRoot": false, "seccompProfile": {"type": "Unconfined"}},
		"containers": [{
			"name": "app",
			"image": "nginx:1.27",
			"securityContext": {"allowPrivilegeEscalation": true, "capabilities": {"drop": ["ALL"]}},
		}],
	}})
}

test_container_run_as_root_skips_run_as_non_root if {
	mutations := security_context.mutate with input as review({"spec": {"containers": [
		app("app"),
		object.union(app("root"), {"securityContext": {"runAsUser": 0}}),
	]}})
	not {"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true} in mutations
	count(mutations) == 5
}

test_init_container_run_as_root_skips_run_as_non_root if {
	mutations := security_context.mutate with input as review({"spec": {
		"initContainers": [object.union(app("chown"), {"securityContext": {"runAsUser": 0}})],
		"containers": [app("app")],
	}})
	not {"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true} in mutations
}

test_pod_run_as_root_skips_run_as_non_root if {
	mutations := security_context.mutate with input as review({"spec": {
		"securityContext": {"runAsUser": 0},
		"containers": [app("app")],
	}})
	not {"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true} in mutations
	{"op": "default", "path": ["spec", "securityContext", "seccompProfile"], "value": {"type": "RuntimeDefault"}} in mutations
}

test_non_root_uid_still_defaults_run_as_non_root if {
	mutations := security_context.mutate with input as review({"spec": {"containers": [object.union(app("app"), {"securityContext": {"runAsUser": 1000}})]}})
	{"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true} in mutations
}

test_drop_list_without_all_gains_all if {
	security_context.mutate == {{"op": "append", "path": ["spec", "containers", {"name": "app"}, "securityContext", "capabilities", "drop"], "value": ["ALL"]}} with input as review({"spec": {
		"securityContext": hardened_pod_sc,
		"containers": [{
			"name": "app",
			"image": "nginx:1.27",
			"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE"]}},
		}],
	}})
}

test_capability_adds_kept_and_all_dropped if {
	security_context.mutate == container_defaults("containers", "app") with input as review({"spec": {
		"securityContext": hardened_pod_sc,
		"containers": [{"name": "app", "image": "envoy:1", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}],
	}})
}

test_privileged_container_keeps_escalation if {
	security_context.mutate == {{"op": "append", "path": ["spec", "containers", {"name": "cni"}, "securityContext", "capabilities", "drop"], "value": ["ALL"]}} with input as review({"spec": {
		"securityContext": hardened_pod_sc,
		"containers": [{"name": "cni", "image": "cni:1", "securityContext": {"privileged": true}}],
	}})
}

test_sys_admin_container_keeps_escalation if {
	security_context.mutate == {{"op": "append", "path": ["spec", "containers", {"name": "fuse"}, "securityContext", "capabilities", "drop"], "value": ["ALL"]}} with input as review({"spec": {
		"securityContext": hardened_pod_sc,
		"containers": [{"name": "fuse", "image": "fuse:1", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
	}})
}

apparmor_on := object.union(default_switches_for_test, {"apparmor_profile": true})

default_switches_for_test := {
	"run_as_non_root": true,
	"seccomp_profile": true,
	"allow_privilege_escalation": true,
	"drop_all_capabilities": true,
	"read_only_root_filesystem": false,
}

apparmor_default := {"op": "default", "path": ["spec", "securityContext", "appArmorProfile"], "value": {"type": "RuntimeDefault"}}

test_apparmor_off_by_default if {
	mutations := security_context.mutate with input as review({"spec": {"containers": [app("app")]}})
	not apparmor_default in mutations
}

test_apparmor_when_configured if {
	security_context.mutate == (pod_defaults | {apparmor_default}) | container_defaults("containers", "app") with input as review({"spec": {"containers": [app("app")]}})
		with data.portcullis.config.policies.security_context.defaults as apparmor_on
}

test_apparmor_annotation_leaves_apparmor_alone if {
	mutations := security_context.mutate with input as review({
		"metadata": {"name": "web", "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "localhost/custom"}},
		"spec": {"containers": [app("app"), app("other")]},
	})
		with data.portcullis.config.policies.security_context.defaults as apparmor_on
	every m in mutations {
		m.path != ["spec", "securityContext", "appArmorProfile"]
	}
	count(mutations) == 6
}

test_apparmor_container_field_leaves_apparmor_alone if {
	mutations := security_context.mutate with input as review({"spec": {"containers": [
		object.union(app("app"), {"securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "custom"}}}),
		app("other"),
	]}})
		with data.portcullis.config.policies.security_context.defaults as apparmor_on
	not apparmor_default in mutations
	count(mutations) == 6
}

seccomp_default := {"op": "default", "path": ["spec", "securityContext", "seccompProfile"], "value": {"type": "RuntimeDefault"}}

test_seccomp_pod_annotation_leaves_seccomp_alone if {
	mutations := security_context.mutate with input as review({
		"metadata": {"name": "web", "annotations": {"seccomp.security.alpha.kubernetes.io/pod": "localhost/profiles/audit.json"}},
		"spec": {"containers": [app("app")]},
	})
	mutations == {{"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true}} | container_defaults("containers", "app")
}

test_seccomp_container_annotation_leaves_seccomp_alone if {
	mutations := security_context.mutate with input as review({
		"metadata": {"name": "web", "annotations": {"container.seccomp.security.alpha.kubernetes.io/app": "unconfined"}},
		"spec": {"containers": [app("app"), app("other")]},
	})
	not seccomp_default in mutations
	count(mutations) == 5
}

test_unrelated_annotation_keeps_seccomp_default if {
	mutations := security_context.mutate with input as review({
		"metadata": {"name": "web", "annotations": {"seccomp.example.com/pod": "x"}},
		"spec": {"containers": [app("app")]},
	})
	seccomp_default in mutations
}

warning(name, image) := sprintf(
	"container %q (image %q) has no runAsUser and gets runAsNonRoot: true: the kubelet will refuse to start it if the image runs as root or as a non-numeric user; use an image whose USER is a numeric non-root UID, or set securityContext.runAsUser (cluster-wide: policies.security_context.run_as_user)",
	[name, image],
)

test_image_user_containers_warned if {
	security_context.warn == {
		{"msg": warning("init", "nginx:1.27")},
		{"msg": warning("app", "nginx:1.27")},
	} with input as review({"spec": {
		"initContainers": [app("init")],
		"containers": [app("app"), object.union(app("uid"), {"securityContext": {"runAsUser": 1000}}), object.union(app("own"), {"securityContext": {"runAsNonRoot": false}})],
	}})
}

test_pod_run_as_user_means_no_warning if {
	count(security_context.warn) == 0 with input as review({"spec": {
		"securityContext": {"runAsUser": 1000},
		"containers": [app("app")],
	}})
}

test_user_run_as_non_root_means_no_warning if {
	count(security_context.warn) == 0 with input as review({"spec": {
		"securityContext": {"runAsNonRoot": true},
		"containers": [app("app")],
	}})
}

test_configured_uid_filled_instead_of_warning if {
	security_context.mutate == (pod_defaults | container_defaults("containers", "app")) | {
		{"op": "default", "path": ["spec", "securityContext", "runAsUser"], "value": 10001},
		{"op": "default", "path": ["spec", "securityContext", "runAsGroup"], "value": 10001},
	} with input as review({"spec": {"containers": [app("app")]}})
		with data.portcullis.config.policies.security_context.run_as_user as 10001
	count(security_context.warn) == 0 with input as review({"spec": {"containers": [app("app")]}})
		with data.portcullis.config.policies.security_context.run_as_user as 10001
}

test_configured_gid_and_kept_group if {
	mutations := security_context.mutate with input as review({"spec": {
		"securityContext": {"runAsGroup": 3000},
		"containers": [app("app")],
	}})
		with data.portcullis.config.policies.security_context.run_as_user as 10001
		with data.portcullis.config.policies.security_context.run_as_group as 20002
	{"op": "default", "path": ["spec", "securityContext", "runAsUser"], "value": 10001} in mutations
	every m in mutations {
		m.path != ["spec", "securityContext", "runAsGroup"]
	}
	{"op": "default", "path": ["spec", "securityContext", "runAsGroup"], "value": 20002} in security_context.mutate with input as review({"spec": {"containers": [app("app")]}})
		with data.portcullis.config.policies.security_context.run_as_user as 10001
		with data.portcullis.config.policies.security_context.run_as_group as 20002
}

test_configured_uid_not_used_when_every_container_has_one if {
	mutations := security_context.mutate with input as review({"spec": {"containers": [object.union(app("app"), {"securityContext": {"runAsUser": 1000}})]}})
		with data.portcullis.config.policies.security_context.run_as_user as 10001
	every m in mutations {
		m.path != ["spec", "securityContext", "runAsUser"]
	}
}

test_host_process_pod_untouched if {
	count(security_context.mutate) == 0 with input as review({"spec": {
		"securityContext": {"windowsOptions": {"hostProcess": true}},
		"hostNetwork": true,
		"containers": [app("app")],
	}})
}

test_read_only_root_filesystem_when_configured if {
	security_context.mutate == {
		{"op": "default", "path": ["spec", "containers", {"name": "app"}, "securityContext", "readOnlyRootFilesystem"], "value": true},
		{"op": "default", "path": ["spec", "initContainers", {"name": "init"}, "securityContext", "readOnlyRootFilesystem"], "value": true},
	} with input as review({"spec": {
		"securityContext": hardened_pod_sc,
		"initContainers": [hardened_container("init")],
		"containers": [hardened_container("app"), object.union(hardened_container("rw"), {"securityContext": {"readOnlyRootFilesystem": false}})],
	}})
		with data.portcullis.config.policies.security_context.defaults.read_only_root_filesystem as true
}

test_defaults_can_be_switched_off if {
	security_context.mutate == {{"op": "default", "path": ["spec", "securityContext", "seccompProfile"], "value": {"type": "RuntimeDefault"}}} with input as review({"spec": {"containers": [app("app")]}})
		with data.portcullis.config.policies.security_context.defaults as {
			"run_as_non_root": false,
			"apparmor_profile": false,
			"allow_privilege_escalation": false,
			"drop_all_capabilities": false,
		}
}

test_null_fields_count_as_unset if {
	security_context.mutate == pod_defaults | container_defaults("containers", "app") with input as review({"spec": {
		"securityContext": {"runAsNonRoot": null, "seccompProfile": null},
		"containers": [{"name": "app", "image": "nginx:1.27", "securityContext": {"allowPrivilegeEscalation": null, "capabilities": {"drop": null}}}],
	}})
}

test_excluded_namespace_glob_untouched if {
	count(security_context.mutate) == 0 with input as in_namespace({"spec": {"containers": [app("app")]}}, "legacy-billing")
		with data.portcullis.config.policies.security_context.exclude_namespaces as ["legacy-*"]
}

test_exempt_namespace_untouched if {
	count(security_context.mutate) == 0 with input as in_namespace({"spec": {"containers": [app("app")]}}, "kube-system")
		with data.portcullis.config.exempt_namespaces as ["kube-system"]
}

test_only_included_namespaces if {
	count(security_context.mutate) == 0 with input as in_namespace({"spec": {"containers": [app("app")]}}, "default")
		with data.portcullis.config.policies.security_context.namespaces as ["team-*", "prod"]
	count(security_context.mutate) == 4 with input as in_namespace({"spec": {"containers": [app("app")]}}, "team-a")
		with data.portcullis.config.policies.security_context.namespaces as ["team-*", "prod"]
}

test_windows_pod_untouched if {
	count(security_context.mutate) == 0 with input as review({"spec": {"os": {"name": "windows"}, "containers": [app("app")]}})
}

test_update_untouched if {
	count(security_context.mutate) == 0 with input as json.patch(review({"spec": {"containers": [app("app")]}}), [{"op": "replace", "path": "/request/operation", "value": "UPDATE"}])
}

test_subresource_untouched if {
	count(security_context.mutate) == 0 with input as json.patch(review({"spec": {"containers": [app("app")]}}), [{"op": "replace", "path": "/request/subResource", "value": "ephemeralcontainers"}])
}

test_deployment_without_template_untouched if {
	count(security_context.mutate) == 0 with input as json.patch(review({"spec": {"containers": [app("app")]}}), [{"op": "replace", "path": "/request/kind/kind", "value": "Deployment"}])
}

workload(kind, obj, op) := {"request": {
	"kind": {"group": "apps", "version": "v1", "kind": kind},
	"operation": op,
	"namespace": "default",
	"object": object.union({"kind": kind, "metadata": {"name": "api"}}, obj),
}}

prefixed(prefix, edits) := {object.union(e, {"path": array.concat(prefix, array.slice(e.path, 1, count(e.path)))}) | some e in edits}

test_deployment_template_gets_every_default if {
	prefix := ["spec", "template", "spec"]
	security_context.mutate == prefixed(prefix, pod_defaults | container_defaults("containers", "app")) with input as workload(
		"Deployment",
		{"spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [app("app")]}}}},
		"CREATE",
	)
}

test_deployment_update_defaults_template if {
	prefix := ["spec", "template", "spec"]
	security_context.mutate == prefixed(prefix, container_defaults("containers", "app")) with input as workload(
		"Deployment",
		{"spec": {"template": {"spec": {"securityContext": hardened_pod_sc, "containers": [app("app")]}}}},
		"UPDATE",
	)
}

test_cronjob_template_path if {
	prefix := ["spec", "jobTemplate", "spec", "template", "spec"]
	security_context.mutate == prefixed(prefix, pod_defaults | container_defaults("containers", "job")) with input as workload(
		"CronJob",
		{"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [app("job")]}}}}}},
		"CREATE",
	)
}

test_pod_template_path if {
	security_context.mutate == prefixed(["template", "spec"], pod_defaults | container_defaults("containers", "app")) with input as workload(
		"PodTemplate",
		{"template": {"spec": {"containers": [app("app")]}}},
		"CREATE",
	)
}

test_templates_switched_off if {
	count(security_context.mutate) == 0 with input as workload(
		"Deployment",
		{"spec": {"template": {"spec": {"containers": [app("app")]}}}},
		"CREATE",
	)
		with data.portcullis.config.policies.security_context.templates as false
}
