package portcullis.pod_security_test

test_run_as_user_allowed_values if {
	spec := patch(clean_spec, [
		{"op": "add", "path": "/securityContext/runAsUser", "value": 1000},
		{"op": "add", "path": "/containers/0/securityContext/runAsUser", "value": 65534},
	])
	count(restricted(spec)) == 0
}

test_run_as_user_pod_and_container if {
	spec := patch(clean_spec, [
		{"op": "add", "path": "/securityContext/runAsUser", "value": 0},
		{"op": "add", "path": "/containers/0/securityContext/runAsUser", "value": 0},
	])
	restricted(spec) == {violation("runAsUser", "restricted", `runAsUser=0 (pod and container "app" must not set runAsUser=0)`)}
}

test_run_as_user_container if {
	spec := patch(clean_spec, [
		{"op": "add", "path": "/securityContext/runAsUser", "value": 1000},
		{"op": "add", "path": "/containers/0/securityContext/runAsUser", "value": 0},
	])
	restricted(spec) == {violation("runAsUser", "restricted", `runAsUser=0 (container "app" must not set runAsUser=0)`)}
}

test_run_as_user_user_namespace_relaxed if {
	spec := patch(clean_spec, [
		{"op": "add", "path": "/hostUsers", "value": false},
		{"op": "add", "path": "/securityContext/runAsUser", "value": 0},
	])
	count(restricted(spec)) == 0
}
