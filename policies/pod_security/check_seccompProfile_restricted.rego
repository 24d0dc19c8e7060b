package portcullis.pod_security

# seccompProfile_restricted (restricted): the pod, or every container, must set
# securityContext.seccompProfile.type to RuntimeDefault or Localhost; a
# container without its own profile inherits a valid pod-level one. Windows
# pods are exempt. Replaces seccompProfile_baseline.

checks["seccompProfile_restricted"] := {"level": "restricted", "overrides": ["seccompProfile_baseline"]}

_pod_seccomp_set if {
	profile := _get(pod_security_context, "seccompProfile", null)
	profile != null
	seccomp_profile_types[_get(profile, "type", "")]
}

result["seccompProfile_restricted"] := _seccomp_explicit_result if not windows_pod

result["seccompProfile_restricted"] := {
	"reason": "seccompProfile",
	"detail": sprintf("pod or %s must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"", [containers_phrase(implicit)]),
} if {
	not windows_pod
	not _seccomp_explicit_result
	not _pod_seccomp_set
	implicit := [_name(c) | some c in containers; not _set(_security_context(c), "seccompProfile")]
	count(implicit) > 0
}
