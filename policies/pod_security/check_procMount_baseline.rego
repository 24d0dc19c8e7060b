package portcullis.pod_security

# procMount (baseline; replaced by procMount_restricted at restricted):
# containers[*].securityContext.procMount. Allowed: undefined/null, "Default",
# or any value when the pod is in a user namespace (hostUsers: false, v1.35+).

_proc_mounts := [{"index": i, "type": proc_mount} |
	some i, c in containers
	proc_mount := c.securityContext.procMount
	proc_mount != null
	proc_mount != "Default"
]

# _proc_mount_result is upstream's procMount_1_0, shared by both levels.
_proc_mount_result := {
	"reason": "procMount",
	"detail": sprintf("%s must not set securityContext.procMount to %s", [
		containers_phrase(names_at({e.index | some e in _proc_mounts})),
		join_quote(sort({e.type | some e in _proc_mounts})),
	]),
} if {
	count(_proc_mounts) > 0
}

result["procMount"] := _proc_mount_result if not user_namespace_pod
