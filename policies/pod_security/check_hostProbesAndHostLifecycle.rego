package portcullis.pod_security

# hostProbesAndHostLifecycle (baseline, v1.34+): the host field of probes
# (liveness, readiness, startup: httpGet, tcpSocket) and lifecycle handlers
# (postStart, preStop: httpGet, tcpSocket). Allowed: "", undefined/null.

_probe_hosts := {{"index": i, "host": host} |
	some i, c in containers
	some probe in ["livenessProbe", "readinessProbe", "startupProbe"]
	some kind in ["httpGet", "tcpSocket"]
	host := c[probe][kind].host
	host != null
	host != ""
} | {{"index": i, "host": host} |
	some i, c in containers
	some handler in ["postStart", "preStop"]
	some kind in ["httpGet", "tcpSocket"]
	host := c.lifecycle[handler][kind].host
	host != null
	host != ""
}

# Upstream collects both containers and hosts in sets: sorted, unique.
result["hostProbesAndHostLifecycle"] := {
	"reason": "probe or lifecycle host",
	"detail": sprintf("%s %s %s %s", [
		containers_phrase(bad),
		pluralize("uses", "use", count(bad)),
		pluralize("probe or lifecycle host", "probe or lifecycle hosts", count(hosts)),
		join_quote(sort(hosts)),
	]),
} if {
	count(_probe_hosts) > 0
	bad := sort({name | some name in names_at({e.index | some e in _probe_hosts})})
	hosts := {e.host | some e in _probe_hosts}
}
