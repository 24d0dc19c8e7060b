package portcullis.pod_security_test

with_ports(name, ports) := {"name": name, "image": "x", "ports": ports}

test_host_ports_allowed_values if {
	count(baseline({"containers": [with_ports("app", [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}, {"containerPort": 82, "hostPort": null}])]})) == 0
}

test_host_port if {
	baseline({"containers": [with_ports("app", [{"containerPort": 80, "hostPort": 8080}])]}) == {violation("hostPorts", "baseline", `hostPort (container "app" uses hostPort 8080)`)}
}

test_host_ports_sorted_as_strings if {
	spec := {"containers": [
		with_ports("app", [{"containerPort": 80, "hostPort": 9}, {"containerPort": 81, "hostPort": 10}]),
		with_ports("side", [{"containerPort": 80, "hostPort": 9}]),
		with_ports("ok", [{"containerPort": 80}]),
	]}
	baseline(spec) == {violation("hostPorts", "baseline", `hostPort (containers "app", "side" use hostPorts 10, 9)`)}
}
