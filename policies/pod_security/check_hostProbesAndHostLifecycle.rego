package portcullis.pod_security

# hostProbesAndHostLifecycle (baseline, v1.34+): the host field of probes
# (liveness, readiness, startup: httpGet, tcpSocket) and lifecycle handlers
# (postStart, preStop: httpGet, tcpSocket). Allowed: "", undefined/null.

checks["hostProbesAndHostLifecycle"] := {"level": "baseline", "overrides": []}

_handler_hosts(handler) := [host |
	some kind in ["httpGet", "tcpSocket"]
	host := _get(_get(handler, kind, {}), "host", "")
	host != ""
]

_probe_hosts(c) := [host |
	some probe in ["livenessProbe", "readinessProbe", "startupProbe"]
	some host in _handler_hosts(_get(c, probe, {}))
]

_lifecycle_hosts(c) := [host |
	some handler in ["postStart", "preStop"]
	some host in _handler_hosts(_get(_get(c, "lifecycle", {}), handler, {}))
]

_forbidden_hosts(c) := array.concat(_probe_hosts(c), _lifecycle_hosts(c))

# Upstream collects both containers and hosts in sets: sorted, unique.
result["hostProbesAndHostLifecycle"] := {
	"reason": "probe or lifecycle host",
	"detail": sprintf("%s %s %s %s", [
		containers_phrase(sort(bad)),
		pluralize("uses", "use", count(bad)),
		pluralize("probe or lifecycle host", "probe or lifecycle hosts", count(hosts)),
		join_quote(sort(hosts)),
	]),
} if {
	bad := {_name(c) | some c in containers; count(_forbidden_hosts(c)) > 0}
	count(bad) > 0
	hosts := {host | some c in containers; some host in _forbidden_hosts(c)}
}
