package portcullis.pod_security

# hostPorts (baseline): containers[*].ports[*].hostPort. Allowed: undefined/0.

_host_ports := [{"index": i, "port": port} |
	some i, c in containers
	some p in c.ports
	port := p.hostPort
	port != null
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
	count(_host_ports) > 0
	bad := names_at({e.index | some e in _host_ports})
	ports := {format_int(e.port, 10) | some e in _host_ports}
}
