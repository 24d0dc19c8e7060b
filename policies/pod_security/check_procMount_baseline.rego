package portcullis.pod_security

# procMount (baseline; replaced by procMount_restricted at restricted):
# containers[*].securityContext.procMount. Allowed: undefined/null, "Default",
# or any value when the pod is in a user namespace (hostUsers: false, v1.35+).

checks["procMount"] := {"level": "baseline", "overrides": []}

# _proc_mount_result is upstream's procMount_1_0, shared by both levels.
_proc_mount_result := {
	"reason": "procMount",
	"detail": sprintf("%s must not set securityContext.procMount to %s", [
		containers_phrase(bad),
		join_quote(sort(types)),
	]),
} if {
	bad_containers := [c |
		some c in containers
		proc_mount := _get(_security_context(c), "procMount", null)
		proc_mount != null
		proc_mount != "Default"
	]
	count(bad_containers) > 0
	bad := [_name(c) | some c in bad_containers]
	types := {_security_context(c).procMount | some c in bad_containers}
}

result["procMount"] := _proc_mount_result if not user_namespace_pod
