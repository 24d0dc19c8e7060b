package portcullis.pod_security

# windowsHostProcess (baseline): spec.securityContext.windowsOptions.hostProcess
# and containers[*].securityContext.windowsOptions.hostProcess.
# Allowed: undefined, false.

checks["windowsHostProcess"] := {"level": "baseline", "overrides": []}

_host_process(security_context) if _get(security_context, "windowsOptions", {}).hostProcess == true

result["windowsHostProcess"] := {
	"reason": "hostProcess",
	"detail": sprintf("%s must not set securityContext.windowsOptions.hostProcess=true", [concat(" and ", setters)]),
} if {
	bad := [_name(c) | some c in containers; _host_process(_security_context(c))]
	setters := array.concat(
		["pod" | _host_process(pod_security_context)],
		[containers_phrase(bad) | count(bad) > 0],
	)
	count(setters) > 0
}
