package portcullis.pod_security_test

host_path_spec := object.union(baseline_spec, {"volumes": [
	{"name": "root", "hostPath": {"path": "/"}},
	{"name": "cache", "emptyDir": {}},
	{"name": "docker", "hostPath": {}},
	{"name": "nulled", "hostPath": null},
]})

test_host_path_volumes_allowed_values if {
	count(baseline(object.union(baseline_spec, {"volumes": [{"name": "cache", "emptyDir": {}}, {"name": "n", "hostPath": null}]}))) == 0
}

test_host_path_volume if {
	spec := object.union(baseline_spec, {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]})
	baseline(spec) == {violation("hostPathVolumes", "baseline", `hostPath volumes (volume "root")`)}
}

test_host_path_volumes if {
	baseline(host_path_spec) == {violation("hostPathVolumes", "baseline", `hostPath volumes (volumes "root", "docker")`)}
}

test_host_path_volumes_replaced_by_restricted_volumes if {
	spec := object.union(clean_spec, {"volumes": host_path_spec.volumes})
	restricted(spec) == {violation("restrictedVolumes", "restricted", `restricted volume types (volumes "root", "docker", "nulled" use restricted volume types "hostPath", "unknown")`)}
}
