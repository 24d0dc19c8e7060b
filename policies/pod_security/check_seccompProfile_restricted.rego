package portcullis.pod_security

# seccompProfile_restricted (restricted): the pod, or every container, must set
# securityContext.seccompProfile.type to RuntimeDefault or Localhost; a
# container without its own profile inherits a valid pod-level one. Windows
# pods are exempt. Replaces seccompProfile_baseline.

_pod_seccomp_set if seccomp_profile_types[object.get(pod_security_context, ["seccompProfile", "type"], "")]

result["seccompProfile_restricted"] := _seccomp_explicit_result if not windows_pod

result["seccompProfile_restricted"] := {
	"reason": "seccompProfile",
	"detail": sprintf("pod or %s must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"", [containers_phrase(names_at(unset))]),
} if {
	not windows_pod
	not _seccomp_explicit_result
	not _pod_seccomp_set
	unset := {i | some i, c in containers; object.get(c, ["securityContext", "seccompProfile"], null) == null}
	count(unset) > 0
}
