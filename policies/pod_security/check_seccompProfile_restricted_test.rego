package portcullis.pod_security_test

without_pod_seccomp := json.remove(clean_spec, ["securityContext/seccompProfile"])

test_seccomp_restricted_container_level_is_enough if {
	spec := patch(without_pod_seccomp, [{"op": "add", "path": "/containers/0/securityContext/seccompProfile", "value": {"type": "Localhost", "localhostProfile": "p.json"}}])
	count(restricted(spec)) == 0
}

test_seccomp_restricted_unset if {
	spec := object.union(without_pod_seccomp, {"containers": [
		container("app", clean_sc),
		container("side", object.union(clean_sc, {"seccompProfile": {"type": "RuntimeDefault"}})),
		container("other", clean_sc),
	]})
	restricted(spec) == {violation("seccompProfile_restricted", "restricted", `seccompProfile (pod or containers "app", "other" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`)}
}

test_seccomp_restricted_explicit_wins_over_unset if {
	spec := object.union(without_pod_seccomp, {"containers": [
		container("app", clean_sc),
		container("side", object.union(clean_sc, {"seccompProfile": {"type": "Unconfined"}})),
	]})
	restricted(spec) == {violation("seccompProfile_restricted", "restricted", `seccompProfile (container "side" must not set securityContext.seccompProfile.type to "Unconfined")`)}
}

test_seccomp_restricted_container_overrides_pod if {
	spec := patch(clean_spec, [{"op": "add", "path": "/containers/0/securityContext/seccompProfile", "value": {"type": "Unconfined"}}])
	restricted(spec) == {violation("seccompProfile_restricted", "restricted", `seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")`)}
}

test_seccomp_restricted_bad_pod_level if {
	spec := patch(clean_spec, [{"op": "replace", "path": "/securityContext/seccompProfile", "value": {"type": "Unconfined"}}])
	restricted(spec) == {violation("seccompProfile_restricted", "restricted", `seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")`)}
}

test_seccomp_restricted_windows_exempt if {
	count(restricted(object.union(without_pod_seccomp, {"os": {"name": "windows"}}))) == 0
}
