package portcullis.pod_security

# sysctls (baseline): spec.securityContext.sysctls[*].name must be in the
# safe set (v1.37).

safe_sysctls := {
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_wmem",
	"net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_notsent_lowat",
}

# Upstream lists the forbidden names in spec order, unquoted, not deduplicated.
result["sysctls"] := {
	"reason": "forbidden sysctls",
	"detail": concat(", ", forbidden),
} if {
	forbidden := [name |
		some sysctl in _list(pod_security_context, "sysctls")
		name := _get(sysctl, "name", "")
		not safe_sysctls[name]
	]
	count(forbidden) > 0
}
