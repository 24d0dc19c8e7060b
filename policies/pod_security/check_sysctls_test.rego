package portcullis.pod_security_test

with_sysctls(names) := object.union(baseline_spec, {"securityContext": {"sysctls": [{"name": n, "value": "1"} | some n in names]}})

test_sysctls_allowed_values if {
	count(baseline(with_sysctls([
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
	]))) == 0
}

test_sysctls_in_order_not_deduplicated if {
	baseline(with_sysctls(["kernel.msgmax", "net.ipv4.tcp_syncookies", "net.core.somaxconn", "kernel.msgmax"])) == {violation("sysctls", "baseline", "forbidden sysctls (kernel.msgmax, net.core.somaxconn, kernel.msgmax)")}
}

test_sysctls_empty_name_has_no_detail if {
	baseline(with_sysctls([""])) == {violation("sysctls", "baseline", "forbidden sysctls")}
}
