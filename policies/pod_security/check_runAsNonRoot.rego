package portcullis.pod_security

# runAsNonRoot (restricted): spec.securityContext.runAsNonRoot and
# containers[*].securityContext.runAsNonRoot. Allowed: true; undefined at
# container level when the pod sets true; anything when the pod is in a user
# namespace (hostUsers: false, v1.35+).

_explicit_root := [_name(c) | some c in containers; c.securityContext.runAsNonRoot == false]

result["runAsNonRoot"] := {
	"reason": "runAsNonRoot != true",
	"detail": sprintf("%s must not set securityContext.runAsNonRoot=false", [concat(" and ", setters)]),
} if {
	not user_namespace_pod
	setters := array.concat(
		["pod" | pod_security_context.runAsNonRoot == false],
		[containers_phrase(_explicit_root) | count(_explicit_root) > 0],
	)
	count(setters) > 0
}

result["runAsNonRoot"] := {
	"reason": "runAsNonRoot != true",
	"detail": sprintf("pod or %s must set securityContext.runAsNonRoot=true", [containers_phrase(names_at(unset))]),
} if {
	not user_namespace_pod
	not pod_security_context.runAsNonRoot == false
	not pod_security_context.runAsNonRoot == true
	count(_explicit_root) == 0
	unset := {i | some i, c in containers; object.get(c, ["securityContext", "runAsNonRoot"], null) == null}
	count(unset) > 0
}
