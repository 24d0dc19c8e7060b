package portcullis.pod_security

# capabilities_baseline (baseline; replaced by capabilities_restricted at
# restricted): containers[*].securityContext.capabilities.add.
# Allowed: undefined/empty, or values from the default set below.

checks["capabilities_baseline"] := {"level": "baseline", "overrides": []}

baseline_capabilities := {
	"AUDIT_WRITE",
	"CHOWN",
	"DAC_OVERRIDE",
	"FOWNER",
	"FSETID",
	"KILL",
	"MKNOD",
	"NET_BIND_SERVICE",
	"SETFCAP",
	"SETGID",
	"SETPCAP",
	"SETUID",
	"SYS_CHROOT",
}

_added_capabilities(c) := [_str(cap) | some cap in _list(_get(_security_context(c), "capabilities", {}), "add")]

_non_default_capabilities(c) := [cap | some cap in _added_capabilities(c); not baseline_capabilities[cap]]

result["capabilities_baseline"] := {
	"reason": "non-default capabilities",
	"detail": sprintf("%s must not include %s in securityContext.capabilities.add", [
		containers_phrase(bad),
		join_quote(sort(capabilities)),
	]),
} if {
	bad := [_name(c) | some c in containers; count(_non_default_capabilities(c)) > 0]
	count(bad) > 0
	capabilities := {cap | some c in containers; some cap in _non_default_capabilities(c)}
}
