package portcullis.pod_security_test

test_proc_mount_restricted_replaces_baseline if {
	spec := patch(clean_spec, [{"op": "add", "path": "/containers/0/securityContext/procMount", "value": "Unmasked"}])
	restricted(spec) == {violation("procMount_restricted", "restricted", `procMount (container "app" must not set securityContext.procMount to "Unmasked")`)}
}

test_proc_mount_restricted_not_relaxed_in_user_namespace if {
	spec := object.union(patch(clean_spec, [{"op": "add", "path": "/containers/0/securityContext/procMount", "value": "Unmasked"}]), {"hostUsers": false})
	restricted(spec) == {violation("procMount_restricted", "restricted", `procMount (container "app" must not set securityContext.procMount to "Unmasked")`)}
}
