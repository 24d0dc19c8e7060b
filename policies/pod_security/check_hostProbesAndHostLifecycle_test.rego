package portcullis.pod_security_test

test_probe_hosts_allowed_values if {
	c := {
		"name": "app",
		"image": "x",
		"livenessProbe": {"httpGet": {"port": 80, "host": ""}},
		"readinessProbe": {"tcpSocket": {"port": 80}},
		"startupProbe": {"exec": {"command": ["true"]}},
		"lifecycle": {"preStop": {"httpGet": {"port": 80, "host": null}}},
	}
	count(baseline({"containers": [c]})) == 0
}

test_probe_host if {
	c := {"name": "app", "image": "x", "readinessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}}}
	baseline({"containers": [c]}) == {violation("hostProbesAndHostLifecycle", "baseline", `probe or lifecycle host (container "app" uses probe or lifecycle host "10.0.0.1")`)}
}

test_probe_and_lifecycle_hosts_sorted_and_unique if {
	zeta := {
		"name": "zeta",
		"image": "x",
		"livenessProbe": {"httpGet": {"port": 80, "host": "metadata.internal"}},
		"startupProbe": {"tcpSocket": {"port": 80, "host": "10.0.0.1"}},
	}
	alpha := {
		"name": "alpha",
		"image": "x",
		"lifecycle": {
			"postStart": {"tcpSocket": {"port": 80, "host": "10.0.0.1"}},
			"preStop": {"httpGet": {"port": 80, "host": "10.0.0.1"}},
		},
	}
	baseline({"initContainers": [zeta], "containers": [alpha]}) == {violation("hostProbesAndHostLifecycle", "baseline", `probe or lifecycle host (containers "alpha", "zeta" use probe or lifecycle hosts "10.0.0.1", "metadata.internal")`)}
}
