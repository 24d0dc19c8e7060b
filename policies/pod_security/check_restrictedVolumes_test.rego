package portcullis.pod_security_test

test_restricted_volumes_allowed_values if {
	volumes := [{"name": source, source: {}} | some source in [
		"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
		"image", "persistentVolumeClaim", "projected", "secret",
	]]
	count(restricted(object.union(clean_spec, {"volumes": volumes}))) == 0
}

test_restricted_volume if {
	spec := object.union(clean_spec, {"volumes": [{"name": "share", "nfs": {"server": "nfs", "path": "/"}}]})
	restricted(spec) == {violation("restrictedVolumes", "restricted", `restricted volume types (volume "share" uses restricted volume type "nfs")`)}
}

test_restricted_volumes_types_sorted_unknown_for_none if {
	spec := object.union(clean_spec, {"volumes": [
		{"name": "a", "rbd": {}},
		{"name": "b", "configMap": {"name": "x"}},
		{"name": "c"},
		{"name": "d", "gitRepo": {}, "hostPath": {}},
		{"name": "e", "emptyDir": null},
		{"name": "f", "rbd": {}, "secret": {}},
	]})
	restricted(spec) == {violation("restrictedVolumes", "restricted", `restricted volume types (volumes "a", "c", "d", "e" use restricted volume types "hostPath", "rbd", "unknown")`)}
}

test_restricted_volumes_not_a_baseline_check if {
	count(baseline(object.union(baseline_spec, {"volumes": [{"name": "share", "nfs": {}}]}))) == 0
}
