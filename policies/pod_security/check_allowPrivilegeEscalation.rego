package portcullis.pod_security

# allowPrivilegeEscalation (restricted): containers[*].securityContext.allowPrivilegeEscalation
# must be false (unset is not enough). Windows pods are exempt.

result["allowPrivilegeEscalation"] := {
	"reason": "allowPrivilegeEscalation != false",
	"detail": sprintf("%s must set securityContext.allowPrivilegeEscalation=false", [containers_phrase(bad)]),
} if {
	not windows_pod
	bad := [_name(c) | some c in containers; not c.securityContext.allowPrivilegeEscalation == false]
	count(bad) > 0
}
