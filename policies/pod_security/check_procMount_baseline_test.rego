package portcullis.pod_security_test

test_proc_mount_allowed_values if {
	spec := {"containers": [container("app", {"procMount": "Default"}), container("side", {"procMount": null})]}
	count(baseline(spec)) == 0
}

test_proc_mount if {
	spec := {"containers": [container("app", {"procMount": "Unmasked"}), container("side", {"procMount": ""})]}
	baseline(spec) == {violation("procMount", "baseline", `procMount (containers "app", "side" must not set securityContext.procMount to "", "Unmasked")`)}
}

test_proc_mount_user_namespace_relaxed_at_baseline if {
	spec := {"hostUsers": false, "containers": [container("app", {"procMount": "Unmasked"})]}
	count(baseline(spec)) == 0
	spec_host := {"hostUsers": true, "containers": [container("app", {"procMount": "Unmasked"})]}
	checks_of(baseline(spec_host)) == {"procMount"}
}
