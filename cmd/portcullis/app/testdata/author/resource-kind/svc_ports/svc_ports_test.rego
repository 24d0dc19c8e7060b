package portcullis.svc_ports_test

import data.portcullis.svc_ports

test_nodeport_denied if {
	count(svc_ports.deny) == 1 with input as {"request": {"kind": {"kind": "Service"}, "object": {"spec": {"type": "NodePort"}}}}
}

