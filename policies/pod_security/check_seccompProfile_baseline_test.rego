package portcullis.pod_security_test

import data.portcullis.pod_security

test_seccomp_baseline_allowed_values if {
	spec := {
		"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
		"containers": [container("app", {"seccompProfile": {"type": "RuntimeDefault"}}), container("side", {"seccompProfile": null})],
	}
	count(baseline(spec)) == 0
}

test_seccomp_baseline_container if {
	spec := {"containers": [container("app", {"seccompProfile": {"type": "Unconfined"}})]}
	baseline(spec) == {violation("seccompProfile_baseline", "baseline", `seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")`)}
}

test_seccomp_baseline_pod_and_containers if {
	spec := {
		"securityContext": {"seccompProfile": {"type": "Unconfined"}},
		"containers": [container("app", {"seccompProfile": {"type": "Unconfined"}}), container("side", {"seccompProfile": {}})],
	}
	baseline(spec) == {violation("seccompProfile_baseline", "baseline", `seccompProfile (pod and containers "app", "side" must not set securityContext.seccompProfile.type to "", "Unconfined")`)}
}

test_seccomp_annotations_ignored_since_v1_19 if {
	pod := {"metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}, "spec": baseline_spec}
	count(pod_security.deny) == 0 with input as review("Pod", pod)
		with data.portcullis.config as config({"level": "baseline"})
}
