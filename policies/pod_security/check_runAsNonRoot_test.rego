package portcullis.pod_security_test

without_pod_non_root := json.remove(clean_spec, ["securityContext/runAsNonRoot"])

test_run_as_non_root_container_level_is_enough if {
	spec := patch(without_pod_non_root, [{"op": "add", "path": "/containers/0/securityContext/runAsNonRoot", "value": true}])
	count(restricted(spec)) == 0
}

test_run_as_non_root_unset if {
	spec := object.union(without_pod_non_root, {"initContainers": [container("init", clean_sc)]})
	restricted(spec) == {violation("runAsNonRoot", "restricted", `runAsNonRoot != true (pod or containers "init", "app" must set securityContext.runAsNonRoot=true)`)}
}

test_run_as_non_root_pod_false if {
	spec := patch(clean_spec, [{"op": "replace", "path": "/securityContext/runAsNonRoot", "value": false}])
	restricted(spec) == {violation("runAsNonRoot", "restricted", `runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)`)}
}

test_run_as_non_root_container_overrides_pod if {
	spec := patch(clean_spec, [{"op": "add", "path": "/containers/0/securityContext/runAsNonRoot", "value": false}])
	restricted(spec) == {violation("runAsNonRoot", "restricted", `runAsNonRoot != true (container "app" must not set securityContext.runAsNonRoot=false)`)}
}

test_run_as_non_root_explicit_false_wins_over_unset if {
	spec := object.union(without_pod_non_root, {"containers": [
		container("app", object.union(clean_sc, {"runAsNonRoot": false})),
		container("side", clean_sc),
	]})
	restricted(spec) == {violation("runAsNonRoot", "restricted", `runAsNonRoot != true (container "app" must not set securityContext.runAsNonRoot=false)`)}
}

test_run_as_non_root_user_namespace_relaxed if {
	count(restricted(object.union(without_pod_non_root, {"hostUsers": false}))) == 0
	checks_of(restricted(object.union(without_pod_non_root, {"hostUsers": true}))) == {"runAsNonRoot"}
}
