package portcullis.pod_security

# capabilities_restricted (restricted): containers must drop ALL and may add
# only NET_BIND_SERVICE (containers[*].securityContext.capabilities.drop and
# .add). Windows pods are exempt.

_missing_drop_all := {i |
	some i, c in containers
	not "ALL" in object.get(c, ["securityContext", "capabilities", "drop"], [])
}

_restricted_added := [{"index": i, "capability": _str(cap)} |
	some i, c in containers
	some cap in c.securityContext.capabilities.add
	cap != "NET_BIND_SERVICE"
]

result["capabilities_restricted"] := {
	"reason": "unrestricted capabilities",
	"detail": concat("; ", details),
} if {
	not windows_pod
	count(_missing_drop_all) + count(_restricted_added) > 0
	details := array.concat(
		[sprintf("%s must set securityContext.capabilities.drop=[\"ALL\"]", [containers_phrase(names_at(_missing_drop_all))]) |
			count(_missing_drop_all) > 0
		],
		[sprintf("%s must not include %s in securityContext.capabilities.add", [
			containers_phrase(names_at({e.index | some e in _restricted_added})),
			join_quote(sort({e.capability | some e in _restricted_added})),
		]) |
			count(_restricted_added) > 0
		],
	)
}
