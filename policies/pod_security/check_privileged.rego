package portcullis.pod_security

# privileged (baseline): containers must not set securityContext.privileged=true.
# Allowed: false, undefined/null.

result["privileged"] := {
	"reason": "privileged",
	"detail": sprintf("%s must not set securityContext.privileged=true", [containers_phrase(bad)]),
} if {
	bad := [_name(c) | some c in containers; c.securityContext.privileged == true]
	count(bad) > 0
}
