package portcullis.svc_ports_test

import data.portcullis.svc_ports

# The configured allowed_types come from the directory's config.yaml.
test_configured_type_allowed if {
	count(svc_ports.deny) == 0 with input as {"request": {"kind": {"kind": "Service"}, "object": {"spec": {"type": "LoadBalancer"}}}}
}
