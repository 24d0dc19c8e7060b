package portcullis.pod_security_test

test_selinux_allowed_values if {
	spec := {
		"securityContext": {"seLinuxOptions": {"type": "container_engine_t", "level": "s0:c1,c2"}},
		"containers": [
			container("app", {"seLinuxOptions": {"type": "container_t", "user": "", "role": null}}),
			container("side", {"seLinuxOptions": {}}),
			container("init", {"seLinuxOptions": {"type": "container_init_t"}}),
			container("kvm", {"seLinuxOptions": {"type": "container_kvm_t"}}),
		],
	}
	count(baseline(spec)) == 0
}

test_selinux_type if {
	spec := {"containers": [container("app", {"seLinuxOptions": {"type": "spc_t"}})]}
	baseline(spec) == {violation("seLinuxOptions", "baseline", `seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: type "spc_t")`)}
}

test_selinux_pod_and_containers if {
	spec := {
		"securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "system_u"}},
		"containers": [
			container("app", {"seLinuxOptions": {"role": "system_r"}}),
			container("side", {"seLinuxOptions": {"type": "unconfined_t"}}),
		],
	}
	baseline(spec) == {violation("seLinuxOptions", "baseline", `seLinuxOptions (pod and containers "app", "side" set forbidden securityContext.seLinuxOptions: types "spc_t", "unconfined_t"; user may not be set; role may not be set)`)}
}
