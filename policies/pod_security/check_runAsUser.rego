package portcullis.pod_security

# runAsUser (restricted): spec.securityContext.runAsUser and
# containers[*].securityContext.runAsUser must not be 0, unless the pod is in
# a user namespace (hostUsers: false, v1.35+). Allowed: non-zero, undefined.

result["runAsUser"] := {
	"reason": "runAsUser=0",
	"detail": sprintf("%s must not set runAsUser=0", [concat(" and ", setters)]),
} if {
	not user_namespace_pod
	bad := [_name(c) | some c in containers; c.securityContext.runAsUser == 0]
	setters := array.concat(
		["pod" | pod_security_context.runAsUser == 0],
		[containers_phrase(bad) | count(bad) > 0],
	)
	count(setters) > 0
}
