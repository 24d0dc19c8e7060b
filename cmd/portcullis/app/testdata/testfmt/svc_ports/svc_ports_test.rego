package portcullis.svc_ports_test

import data.portcullis.svc_ports

# The configured allowed_types come from the directory's config.yaml.
test_configured_type_allowed if {
	count(svc_ports.deny) == 0 with input as {"request": {"kind": {"kind": "Service"}, "object": {"spec": {"type": "LoadBalancer"}}}}
}

# Fails on purpose: NodePort is not allowed.
test_nodeport_allowed_fails if {
	print("checking NodePort")
	count(svc_ports.deny) == 0 with input as {"request": {"kind": {"kind": "Service"}, "object": {"spec": {"type": "NodePort"}}}}
}

# Errors on purpose: a conflict between two values of one rule.
conflict := 1 if true

conflict := 2 if true

test_conflict_errors if {
	conflict == 1
}
