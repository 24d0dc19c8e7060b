package portcullis.pod_security_test

with_caps(name, capabilities) := container(name, {"capabilities": capabilities})

test_capabilities_baseline_allowed_values if {
	spec := {"containers": [
		with_caps("app", {"add": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]}),
		with_caps("side", {"drop": ["ALL"], "add": []}),
		with_caps("nulled", null),
	]}
	count(baseline(spec)) == 0
}

test_capabilities_baseline_one if {
	baseline({"containers": [with_caps("app", {"add": ["NET_RAW", "CHOWN"]})]}) == {violation("capabilities_baseline", "baseline", `non-default capabilities (container "app" must not include "NET_RAW" in securityContext.capabilities.add)`)}
}

test_capabilities_baseline_sorted_unique if {
	spec := {"containers": [
		with_caps("app", {"add": ["SYS_ADMIN", "NET_RAW"]}),
		with_caps("side", {"add": ["NET_RAW", "net_raw"]}),
	]}
	baseline(spec) == {violation("capabilities_baseline", "baseline", `non-default capabilities (containers "app", "side" must not include "NET_RAW", "SYS_ADMIN", "net_raw" in securityContext.capabilities.add)`)}
}

test_capabilities_baseline_replaced_at_restricted if {
	spec := patch(clean_spec, [{"op": "add", "path": "/containers/0/securityContext/capabilities/add", "value": ["SYS_ADMIN"]}])
	restricted(spec) == {violation("capabilities_restricted", "restricted", `unrestricted capabilities (container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add)`)}
}
