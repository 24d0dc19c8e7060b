package portcullis.pod_security

# capabilities_baseline (baseline; replaced by capabilities_restricted at
# restricted): containers[*].securityContext.capabilities.add.
# Allowed: undefined/empty, or values from the default set below.

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

_non_default_capabilities := [{"index": i, "capability": _str(cap)} |
	some i, c in containers
	some cap in c.securityContext.capabilities.add
	not baseline_capabilities[cap]
]

result["capabilities_baseline"] := {
	"reason": "non-default capabilities",
	"detail": sprintf("%s must not include %s in securityContext.capabilities.add", [
		containers_phrase(names_at({e.index | some e in _non_default_capabilities})),
		join_quote(sort({e.capability | some e in _non_default_capabilities})),
	]),
} if {
	count(_non_default_capabilities) > 0
}
