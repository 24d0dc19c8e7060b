package portcullis.pod_security_test

test_privileged_allowed_values if {
	count(baseline({"containers": [container("app", {"privileged": false})]})) == 0
	count(baseline({"containers": [container("app", {"privileged": null})]})) == 0
	count(baseline({"containers": [container("app", {})]})) == 0
}

test_privileged_container if {
	baseline({"containers": [container("app", {"privileged": true})]}) == {violation("privileged", "baseline", `privileged (container "app" must not set securityContext.privileged=true)`)}
}

test_privileged_every_container_kind_in_upstream_order if {
	spec := {
		"ephemeralContainers": [container("debug", {"privileged": true})],
		"containers": [container("app", {"privileged": true}), container("ok", {"privileged": false})],
		"initContainers": [container("init", {"privileged": true})],
	}
	baseline(spec) == {violation("privileged", "baseline", `privileged (containers "init", "app", "debug" must not set securityContext.privileged=true)`)}
}
