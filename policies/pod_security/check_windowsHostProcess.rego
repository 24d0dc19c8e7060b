package portcullis.pod_security

# windowsHostProcess (baseline): spec.securityContext.windowsOptions.hostProcess
# and containers[*].securityContext.windowsOptions.hostProcess.
# Allowed: undefined, false.

result["windowsHostProcess"] := {
	"reason": "hostProcess",
	"detail": sprintf("%s must not set securityContext.windowsOptions.hostProcess=true", [concat(" and ", setters)]),
} if {
	bad := [_name(c) | some c in containers; c.securityContext.windowsOptions.hostProcess == true]
	setters := array.concat(
		["pod" | pod_security_context.windowsOptions.hostProcess == true],
		[containers_phrase(bad) | count(bad) > 0],
	)
	count(setters) > 0
}
