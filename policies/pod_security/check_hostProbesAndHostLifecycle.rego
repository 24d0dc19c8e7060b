package portcullis.pod_security

# hostProbesAndHostLifecycle (baseline, v1.34+): the host field of probes
# (liveness, readiness, startup: httpGet, tcpSocket) and lifecycle handlers
# (postStart, preStop: httpGet, tcpSocket). Allowed: "", undefined/null.

# The probe and handler fields are found by walking the container's own
# keys (one reference, no loop over the six probe/kind pairs per
# container); the field names are checked only for the rare hits.
_probe_fields := {"livenessProbe", "readinessProbe", "startupProbe"}

_lifecycle_handlers := {"postStart", "preStop"}

_host_kinds := {"httpGet", "tcpSocket"}

_probe_hosts := {{"index": i, "host": host} |
	some i, c in containers
	host := c[probe][kind].host
	_probe_fields[probe]
	_host_kinds[kind]
	host != null
	host != ""
} | {{"index": i, "host": host} |
	some i, c in containers
	host := c.lifecycle[handler][kind].host
	_lifecycle_handlers[handler]
	_host_kinds[kind]
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
