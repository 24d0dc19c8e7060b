package portcullis.pod_security_test

test_allow_privilege_escalation_unset_or_true if {
	spec := object.union(clean_spec, {"containers": [
		container("app", {"capabilities": {"drop": ["ALL"]}}),
		container("side", object.union(clean_sc, {"allowPrivilegeEscalation": true})),
		container("ok", clean_sc),
		container("nulled", object.union(clean_sc, {"allowPrivilegeEscalation": null})),
	]})
	restricted(spec) == {violation("allowPrivilegeEscalation", "restricted", `allowPrivilegeEscalation != false (containers "app", "side", "nulled" must set securityContext.allowPrivilegeEscalation=false)`)}
}

test_allow_privilege_escalation_not_a_baseline_check if {
	count(baseline({"containers": [container("app", {"allowPrivilegeEscalation": true})]})) == 0
}

test_allow_privilege_escalation_windows_exempt if {
	spec := object.union(clean_spec, {"os": {"name": "windows"}, "containers": [container("app", {"capabilities": {"drop": ["ALL"]}})]})
	count(restricted(spec)) == 0
}
