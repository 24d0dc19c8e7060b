package portcullis.pod_security

# capabilities_restricted (restricted): containers must drop ALL and may add
# only NET_BIND_SERVICE (containers[*].securityContext.capabilities.drop and
# .add). Windows pods are exempt.

checks["capabilities_restricted"] := {"level": "restricted", "overrides": ["capabilities_baseline"]}

_capabilities(c) := _get(_security_context(c), "capabilities", {})

_drops_all(c) if "ALL" in _list(_capabilities(c), "drop")

_restricted_added(c) := [cap |
	some cap in _added_capabilities(c)
	cap != "NET_BIND_SERVICE"
]

result["capabilities_restricted"] := {
	"reason": "unrestricted capabilities",
	"detail": concat("; ", details),
} if {
	not windows_pod
	missing_drop := [_name(c) | some c in containers; not _drops_all(c)]
	adding := [_name(c) | some c in containers; count(_restricted_added(c)) > 0]
	forbidden := {cap | some c in containers; some cap in _restricted_added(c)}
	details := array.concat(
		[sprintf("%s must set securityContext.capabilities.drop=[\"ALL\"]", [containers_phrase(missing_drop)]) | count(missing_drop) > 0],
		[sprintf("%s must not include %s in securityContext.capabilities.add", [containers_phrase(adding), join_quote(sort(forbidden))]) | count(adding) > 0],
	)
	count(details) > 0
}
