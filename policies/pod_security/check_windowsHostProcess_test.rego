package portcullis.pod_security_test

test_host_process_allowed_values if {
	spec := {
		"securityContext": {"windowsOptions": {"hostProcess": false}},
		"containers": [container("app", {"windowsOptions": {"hostProcess": null}}), container("side", {"windowsOptions": {}})],
	}
	count(baseline(spec)) == 0
}

test_host_process_pod_and_containers if {
	spec := {
		"securityContext": {"windowsOptions": {"hostProcess": true}},
		"containers": [container("app", {"windowsOptions": {"hostProcess": true}}), container("side", {"windowsOptions": {"hostProcess": true}})],
	}
	baseline(spec) == {violation("windowsHostProcess", "baseline", `hostProcess (pod and containers "app", "side" must not set securityContext.windowsOptions.hostProcess=true)`)}
}

test_host_process_container if {
	spec := {"containers": [container("app", {"windowsOptions": {"hostProcess": true}})]}
	baseline(spec) == {violation("windowsHostProcess", "baseline", `hostProcess (container "app" must not set securityContext.windowsOptions.hostProcess=true)`)}
}
