package portcullis.pod_security_test

import data.portcullis.pod_security

# ---------------------------------------------------------------------------
# Helpers shared by the check tests (check_*_test.rego).

# container is a container named name with the given securityContext.
container(name, security_context) := {"name": name, "image": "registry.example/app:1", "securityContext": security_context}

# clean_sc is a container securityContext that passes restricted.
clean_sc := {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}

# clean_spec is a pod spec that passes restricted, with one container "app".
clean_spec := {
	"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
	"containers": [container("app", clean_sc)],
}

# baseline_spec is the smallest pod spec that passes baseline.
baseline_spec := {"containers": [{"name": "app", "image": "registry.example/app:1"}]}

review(kind, obj) := {"request": {
	"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
	"kind": {"group": "", "version": "v1", "kind": kind},
	"operation": "CREATE",
	"namespace": "default",
	"userInfo": {"username": "alice"},
	"object": obj,
}}

pod_review(spec) := review("Pod", {"metadata": {"name": "web"}, "spec": spec})

config(settings) := {"policies": {"pod_security": settings}}

# deny_at evaluates a pod spec at a level.
deny_at(level, spec) := d if {
	d := pod_security.deny with input as pod_review(spec)
		with data.portcullis.config as config({"level": level})
}

baseline(spec) := deny_at("baseline", spec)

restricted(spec) := deny_at("restricted", spec)

# patch applies JSON patch operations to a document.
patch(doc, ops) := json.patch(doc, ops)

violation(check, level, msg) := {"msg": msg, "check": check, "level": level}

checks_of(violations) := {v.check | some v in violations}

# ---------------------------------------------------------------------------
# Levels.

privileged_spec := patch(baseline_spec, [{"op": "add", "path": "/containers/0/securityContext", "value": {"privileged": true}}])

privileged_violation := violation("privileged", "baseline", `privileged (container "app" must not set securityContext.privileged=true)`)

test_default_level_is_restricted if {
	pod_security.deny == {
		violation("allowPrivilegeEscalation", "restricted", `allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)`),
		violation("capabilities_restricted", "restricted", `unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])`),
		violation("runAsNonRoot", "restricted", `runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)`),
		violation("seccompProfile_restricted", "restricted", `seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`),
	} with input as pod_review(baseline_spec)
		with data.portcullis.config as {}
}

test_restricted_clean_pod_allowed if {
	count(restricted(clean_spec)) == 0
}

test_baseline_level_skips_restricted_checks if {
	count(baseline(baseline_spec)) == 0
}

test_restricted_includes_baseline if {
	restricted(patch(clean_spec, [{"op": "add", "path": "/hostNetwork", "value": true}])) == {violation("hostNamespaces", "baseline", "host namespaces (hostNetwork=true)")}
}

test_privileged_level_checks_nothing if {
	count(deny_at("privileged", privileged_spec)) == 0
}

test_unknown_level_enforces_restricted_and_warns if {
	checks_of(deny_at("Baseline", baseline_spec)) == {"allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted"}
	pod_security.warn == {{"msg": `unknown level "Baseline" in configuration, enforcing "restricted"`}} with input as pod_review(baseline_spec)
		with data.portcullis.config as config({"level": "Baseline"})
}

in_namespace(ns, settings, spec) := d if {
	d := pod_security.deny with input as json.patch(pod_review(spec), [{"op": "replace", "path": "/request/namespace", "value": ns}])
		with data.portcullis.config as config(settings)
}

namespace_settings := {
	"level": "baseline",
	"namespace_levels": {
		"secure": "restricted",
		"team-*": "baseline",
		"team-secure-*": "restricted",
		"team-legacy": "privileged",
		"sandbox-*": "privileged",
	},
}

test_namespace_level_by_name if {
	count(in_namespace("default", namespace_settings, baseline_spec)) == 0
	count(in_namespace("secure", namespace_settings, baseline_spec)) == 4
}

test_namespace_level_by_glob if {
	count(in_namespace("team-a", namespace_settings, baseline_spec)) == 0
	count(in_namespace("sandbox-1", namespace_settings, privileged_spec)) == 0
}

test_namespace_level_strictest_matching_glob_wins if {
	# team-secure-x matches both team-* (baseline) and team-secure-* (restricted).
	count(in_namespace("team-secure-x", namespace_settings, baseline_spec)) == 4
}

test_namespace_level_exact_name_beats_globs if {
	# team-legacy matches team-* (baseline) but its own entry says privileged.
	count(in_namespace("team-legacy", namespace_settings, privileged_spec)) == 0
	in_namespace("team-other", namespace_settings, privileged_spec) == {privileged_violation}
}

# ---------------------------------------------------------------------------
# Pod Security Admission namespace labels (input.namespace.labels). Whole
# decisions are compared with upstream by TestPodSecurityOracleNamespaceLabels;
# these pin precedence against namespace_levels and the message shapes.

labelled(ns, labels, settings, spec) := r if {
	req := object.union(
		json.patch(pod_review(spec), [{"op": "replace", "path": "/request/namespace", "value": ns}]),
		{"namespace": {"name": ns, "labels": labels}},
	)
	r := {
		"deny": checks_of(pod_security.deny),
		"warn": pod_security.warn,
		"audit": pod_security.audit,
	} with input as req
		with data.portcullis.config as config(settings)
}

psa(mode, value) := {concat("", ["pod-security.kubernetes.io/", mode]): value}

restricted_checks := {"allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted"}

test_enforce_label_picks_level if {
	labelled("default", psa("enforce", "restricted"), {"level": "baseline"}, baseline_spec).deny == restricted_checks
	labelled("default", psa("enforce", "baseline"), {"level": "restricted"}, baseline_spec).deny == set()
	labelled("default", psa("enforce", "privileged"), {}, privileged_spec).deny == set()
}

test_invalid_enforce_label_enforces_restricted if {
	labelled("default", psa("enforce", "Baseline"), {"level": "baseline"}, baseline_spec).deny == restricted_checks
}

test_enforce_label_beats_namespace_levels_by_default if {
	labelled("secure", psa("enforce", "baseline"), namespace_settings, baseline_spec).deny == set()
	labelled("team-a", psa("enforce", "restricted"), namespace_settings, baseline_spec).deny == restricted_checks
}

test_label_precedence_config if {
	settings := object.union(namespace_settings, {"label_precedence": "config"})

	# secure is in namespace_levels (restricted): its entry wins over the label.
	labelled("secure", psa("enforce", "baseline"), settings, baseline_spec).deny == restricted_checks

	# other is not: the label still beats the default level (baseline).
	labelled("other", psa("enforce", "restricted"), settings, baseline_spec).deny == restricted_checks
}

test_label_precedence_ignore if {
	settings := {"level": "baseline", "label_precedence": "ignore"}
	r := labelled("default", object.union(psa("enforce", "restricted"), psa("audit", "restricted")), settings, baseline_spec)
	r == {"deny": set(), "warn": set(), "audit": set()}
}

test_warn_label_warns_only_when_admitted if {
	r := labelled("default", psa("warn", "restricted"), {"level": "baseline"}, baseline_spec)
	r.deny == set()
	r.warn == {{"msg": `would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`}}
	denied := labelled("default", psa("warn", "restricted"), {"level": "baseline"}, privileged_spec)
	denied.deny == {"privileged"}
	denied.warn == set()
}

# The warn level follows an enforce label (with its version); it shows when
# namespace_levels overrides the enforced level (label_precedence: config).
test_enforce_label_raises_warn_level_with_its_version if {
	labels := object.union(psa("enforce", "baseline"), psa("enforce-version", "v1.37"))
	settings := {"level": "baseline", "namespace_levels": {"legacy": "privileged"}, "label_precedence": "config"}
	r := labelled("legacy", labels, settings, privileged_spec)
	r.deny == set()
	r.warn == {{"msg": `would violate PodSecurity "baseline:v1.37": privileged (container "app" must not set securityContext.privileged=true)`}}
	labelled("legacy", object.union(labels, psa("warn", "privileged")), settings, privileged_spec).warn == set()
}

test_audit_label_audits_even_when_denied if {
	labels := object.union(psa("audit", "baseline"), psa("audit-version", "v1.37"))
	r := labelled("default", labels, {"level": "baseline"}, privileged_spec)
	r.deny == {"privileged"}
	r.audit == {{"msg": `would violate PodSecurity "baseline:v1.37": privileged (container "app" must not set securityContext.privileged=true)`}}
	labelled("default", psa("audit", "bogus"), {"level": "baseline"}, privileged_spec).audit == set()
}

# ---------------------------------------------------------------------------
# Exemptions.

exemption_settings := {"exemptions": {
	"namespaces": ["ci-*", "monitoring"],
	"usernames": ["system:serviceaccount:kube-system:replicaset-controller"],
	"runtime_classes": ["kata"],
}}

test_exempt_namespace if {
	count(in_namespace("monitoring", exemption_settings, privileged_spec)) == 0
	count(in_namespace("ci-42", exemption_settings, privileged_spec)) == 0
	in_namespace("monitoring-2", exemption_settings, privileged_spec) != set()
}

as_user(user, spec) := d if {
	d := pod_security.deny with input as json.patch(pod_review(spec), [{"op": "replace", "path": "/request/userInfo/username", "value": user}])
		with data.portcullis.config as config(exemption_settings)
}

test_exempt_username if {
	count(as_user("system:serviceaccount:kube-system:replicaset-controller", privileged_spec)) == 0
	as_user("system:serviceaccount:kube-system:replicaset", privileged_spec) != set()
}

test_exempt_runtime_class if {
	kata := object.union(privileged_spec, {"runtimeClassName": "kata"})
	count(as_user("alice", kata)) == 0
	gvisor := object.union(privileged_spec, {"runtimeClassName": "gvisor"})
	as_user("alice", gvisor) != set()
}

test_empty_values_never_exempt if {
	empty := {"level": "baseline", "exemptions": {"namespaces": ["*"], "usernames": [""], "runtime_classes": [""]}}
	spec := object.union(privileged_spec, {"runtimeClassName": ""})
	pod_security.deny == {privileged_violation} with input as json.patch(pod_review(spec), [
		{"op": "replace", "path": "/request/namespace", "value": ""},
		{"op": "replace", "path": "/request/userInfo/username", "value": ""},
	])
		with data.portcullis.config as config(empty)
}

# ---------------------------------------------------------------------------
# Pod templates of workloads.

template := {"metadata": {"labels": {"app": "web"}}, "spec": privileged_spec}

workloads := {
	"Deployment": {"spec": {"replicas": 2, "template": template}},
	"ReplicaSet": {"spec": {"template": template}},
	"StatefulSet": {"spec": {"template": template}},
	"DaemonSet": {"spec": {"template": template}},
	"Job": {"spec": {"template": template}},
	"ReplicationController": {"spec": {"template": template}},
	"CronJob": {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}},
	"PodTemplate": {"template": template},
}

test_templates_denied_by_default if {
	every kind, obj in workloads {
		pod_security.deny == {privileged_violation} with input as review(kind, object.union(obj, {"metadata": {"name": "web"}}))
			with data.portcullis.config as config({"level": "baseline"})
	}
}

test_templates_warn_mode if {
	every kind, obj in workloads {
		count(pod_security.deny) == 0 with input as review(kind, obj)
			with data.portcullis.config as config({"level": "baseline", "templates": "warn"})
		pod_security.warn == {privileged_violation} with input as review(kind, obj)
			with data.portcullis.config as config({"level": "baseline", "templates": "warn"})
	}
}

test_templates_warn_mode_still_denies_pods if {
	pod_security.deny == {privileged_violation} with input as pod_review(privileged_spec)
		with data.portcullis.config as config({"level": "baseline", "templates": "warn"})
}

test_template_annotations_are_read if {
	annotated := {"spec": {"template": {
		"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
		"spec": baseline_spec,
	}}}
	checks_of(pod_security.deny) == {"appArmorProfile"} with input as review("Deployment", annotated)
		with data.portcullis.config as config({"level": "baseline"})
}

test_other_kinds_ignored if {
	count(pod_security.deny) == 0 with input as review("ConfigMap", {"data": {"spec": "x"}})
		with data.portcullis.config as config({"level": "baseline"})
}

# ---------------------------------------------------------------------------
# Operations and subresources.

request_with(spec, fields) := object.union(pod_review(spec), {"request": fields})

baseline_deny(request) := d if {
	d := pod_security.deny with input as request
		with data.portcullis.config as config({"level": "baseline"})
}

test_delete_and_connect_ignored if {
	count(baseline_deny(request_with(privileged_spec, {"operation": "DELETE"}))) == 0
	count(baseline_deny(request_with(privileged_spec, {"operation": "CONNECT"}))) == 0
}

test_ignored_subresources if {
	every sub in ["status", "binding", "eviction", "exec", "attach", "log", "portforward", "proxy", "resize"] {
		count(baseline_deny(request_with(privileged_spec, {"operation": "UPDATE", "subResource": sub}))) == 0
	}
}

test_ephemeral_containers_subresource_evaluated if {
	old := {"metadata": {"name": "web"}, "spec": baseline_spec}
	new_spec := object.union(baseline_spec, {"ephemeralContainers": [container("debug", {"privileged": true})]})
	baseline_deny(request_with(new_spec, {"operation": "UPDATE", "subResource": "ephemeralcontainers", "oldObject": old})) == {violation("privileged", "baseline", `privileged (container "debug" must not set securityContext.privileged=true)`)}
}

test_workload_subresources_ignored if {
	count(pod_security.deny) == 0 with input as object.union(review("Deployment", workloads.Deployment), {"request": {"subResource": "scale"}})
		with data.portcullis.config as config({"level": "baseline"})
}

update(old_spec, new_spec) := request_with(new_spec, {
	"operation": "UPDATE",
	"oldObject": {"metadata": {"name": "web"}, "spec": old_spec},
})

test_pod_update_without_image_change_skipped if {
	# A running pod that fails the policy can still get its labels and annotations updated.
	count(baseline_deny(update(privileged_spec, privileged_spec))) == 0
}

test_pod_update_changing_image_evaluated if {
	new_spec := patch(privileged_spec, [{"op": "replace", "path": "/containers/0/image", "value": "registry.example/app:2"}])
	baseline_deny(update(privileged_spec, new_spec)) == {privileged_violation}
}

test_pod_update_changing_init_image_evaluated if {
	old := object.union(privileged_spec, {"initContainers": [{"name": "init", "image": "a"}]})
	new := object.union(privileged_spec, {"initContainers": [{"name": "init", "image": "b"}]})
	baseline_deny(update(old, new)) == {privileged_violation}
	count(baseline_deny(update(old, old))) == 0
}

test_pod_update_adding_container_evaluated if {
	new_spec := patch(privileged_spec, [{"op": "add", "path": "/containers/-", "value": {"name": "side", "image": "x"}}])
	baseline_deny(update(privileged_spec, new_spec)) == {privileged_violation}
}

test_pod_update_ephemeral_containers if {
	debug := container("debug", {"privileged": true})
	with_debug := object.union(baseline_spec, {"ephemeralContainers": [debug]})
	debug_violation := violation("privileged", "baseline", `privileged (container "debug" must not set securityContext.privileged=true)`)

	# Added: evaluated. Unchanged: skipped. Image changed: evaluated.
	baseline_deny(update(baseline_spec, with_debug)) == {debug_violation}
	count(baseline_deny(update(with_debug, with_debug))) == 0
	changed := patch(with_debug, [{"op": "replace", "path": "/ephemeralContainers/0/image", "value": "other"}])
	baseline_deny(update(with_debug, changed)) == {debug_violation}
}

test_pod_update_without_old_object_evaluated if {
	baseline_deny(request_with(privileged_spec, {"operation": "UPDATE"})) == {privileged_violation}
}

test_template_update_always_evaluated if {
	request := object.union(review("Deployment", workloads.Deployment), {"request": {
		"operation": "UPDATE",
		"oldObject": workloads.Deployment,
	}})
	baseline_deny(request) == {privileged_violation}
}

# ---------------------------------------------------------------------------
# Robustness: nulls read as absent, as Go decodes them.

test_nulls_read_as_absent if {
	spec := {
		"hostNetwork": null,
		"securityContext": null,
		"volumes": null,
		"initContainers": null,
		"containers": [{"name": "app", "image": "x", "securityContext": {"privileged": null, "capabilities": null, "seccompProfile": null}, "ports": null}],
	}
	count(baseline(spec)) == 0
}

# ---------------------------------------------------------------------------
# The registry.

test_active_checks_follow_the_registry if {
	baseline := {id | some id, check in pod_security.checks; check.level == "baseline"}
	overridden := {id | some check in pod_security.checks; some id in check.overrides}
	restricted := {id | some id, check in pod_security.checks; check.level == "restricted"} | (baseline - overridden)
	count(pod_security.active_checks.privileged) == 0
	pod_security.active_checks.baseline == baseline
	pod_security.active_checks.restricted == restricted
	count(pod_security.checks) == 19
}

# Every check in the registry has a result rule: a pod failing everything
# fails every check of its level.
failing_everything := {
	"hostNetwork": true,
	"securityContext": {
		"runAsUser": 0,
		"seccompProfile": {"type": "Unconfined"},
		"appArmorProfile": {"type": "Unconfined"},
		"seLinuxOptions": {"type": "spc_t"},
		"sysctls": [{"name": "kernel.msgmax", "value": "1"}],
		"windowsOptions": {"hostProcess": true},
	},
	"volumes": [{"name": "host", "hostPath": {"path": "/"}}],
	"containers": [{
		"name": "app",
		"image": "x",
		"ports": [{"containerPort": 80, "hostPort": 80}],
		"livenessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}},
		"securityContext": {
			"privileged": true,
			"procMount": "Unmasked",
			"runAsNonRoot": false,
			"capabilities": {"add": ["SYS_ADMIN"]},
		},
	}],
}

test_every_check_can_fail if {
	checks_of(baseline(failing_everything)) == pod_security.active_checks.baseline
	checks_of(restricted(failing_everything)) == pod_security.active_checks.restricted
}
