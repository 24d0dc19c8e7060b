package portcullis.pod_security_test

test_host_namespaces_allowed_values if {
	count(baseline(object.union(baseline_spec, {"hostNetwork": false, "hostPID": false, "hostIPC": null}))) == 0
}

test_host_namespaces_one if {
	baseline(object.union(baseline_spec, {"hostPID": true})) == {violation("hostNamespaces", "baseline", "host namespaces (hostPID=true)")}
}

test_host_namespaces_all if {
	spec := object.union(baseline_spec, {"hostIPC": true, "hostPID": true, "hostNetwork": true})
	baseline(spec) == {violation("hostNamespaces", "baseline", "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)")}
}
