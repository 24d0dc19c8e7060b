package portcullis.pod_security

# hostPorts (baseline): containers[*].ports[*].hostPort. Allowed: undefined/0.

checks["hostPorts"] := {"level": "baseline", "overrides": []}

_host_ports(c) := [port |
	some p in _list(c, "ports")
	port := _get(p, "hostPort", 0)
	port != 0
]

result["hostPorts"] := {
	"reason": "hostPort",
	"detail": sprintf("%s %s %s %s", [
		containers_phrase(bad),
		pluralize("uses", "use", count(bad)),
		pluralize("hostPort", "hostPorts", count(ports)),
		concat(", ", sort(ports)),
	]),
} if {
	bad := [_name(c) | some c in containers; count(_host_ports(c)) > 0]
	count(bad) > 0
	ports := {format_int(port, 10) | some c in containers; some port in _host_ports(c)}
}
