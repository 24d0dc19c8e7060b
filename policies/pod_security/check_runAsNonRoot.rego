package portcullis.pod_security

# runAsNonRoot (restricted): spec.securityContext.runAsNonRoot and
# containers[*].securityContext.runAsNonRoot. Allowed: true; undefined at
# container level when the pod sets true; anything when the pod is in a user
# namespace (hostUsers: false, v1.35+).

checks["runAsNonRoot"] := {"level": "restricted", "overrides": []}

_pod_run_as_non_root := _get(pod_security_context, "runAsNonRoot", null)

result["runAsNonRoot"] := {
	"reason": "runAsNonRoot != true",
	"detail": sprintf("%s must not set securityContext.runAsNonRoot=false", [concat(" and ", setters)]),
} if {
	not user_namespace_pod
	explicit := [_name(c) | some c in containers; _get(_security_context(c), "runAsNonRoot", null) == false]
	setters := array.concat(
		["pod" | _pod_run_as_non_root == false],
		[containers_phrase(explicit) | count(explicit) > 0],
	)
	count(setters) > 0
}

result["runAsNonRoot"] := {
	"reason": "runAsNonRoot != true",
	"detail": sprintf("pod or %s must set securityContext.runAsNonRoot=true", [containers_phrase(implicit)]),
} if {
	not user_namespace_pod
	_pod_run_as_non_root != false
	not _pod_run_as_non_root == true
	every c in containers {
		_get(_security_context(c), "runAsNonRoot", null) != false
	}
	implicit := [_name(c) | some c in containers; _get(_security_context(c), "runAsNonRoot", null) == null]
	count(implicit) > 0
}
