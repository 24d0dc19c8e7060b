package portcullis.pod_security_test

test_capabilities_restricted_allowed_values if {
	spec := patch(clean_spec, [{"op": "add", "path": "/containers/0/securityContext/capabilities/add", "value": ["NET_BIND_SERVICE"]}])
	count(restricted(spec)) == 0
}

test_capabilities_restricted_missing_drop if {
	spec := object.union(clean_spec, {"containers": [
		container("app", {"allowPrivilegeEscalation": false}),
		container("side", {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["all", "NET_RAW"]}}),
		container("nulled", {"allowPrivilegeEscalation": false, "capabilities": null}),
	]})
	restricted(spec) == {violation("capabilities_restricted", "restricted", `unrestricted capabilities (containers "app", "side", "nulled" must set securityContext.capabilities.drop=["ALL"])`)}
}

test_capabilities_restricted_drop_and_add if {
	spec := object.union(clean_spec, {"containers": [
		container("app", {"allowPrivilegeEscalation": false, "capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}}),
		container("side", {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}}),
	]})
	restricted(spec) == {violation("capabilities_restricted", "restricted", `unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]; containers "app", "side" must not include "CHOWN", "NET_RAW" in securityContext.capabilities.add)`)}
}

test_capabilities_restricted_windows_exempt if {
	spec := object.union(clean_spec, {"os": {"name": "windows"}, "containers": [container("app", {"allowPrivilegeEscalation": false})]})
	count(restricted(spec)) == 0
}
