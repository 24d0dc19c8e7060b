package portcullis.no_nodeport_test

import data.portcullis.no_nodeport

test_nodeport_denied if {
	no_nodeport.deny == {{"msg": "Service web: type NodePort is not allowed"}} with input as {"request": {
		"kind": {"kind": "Service"},
		"object": {"metadata": {"name": "web"}, "spec": {"type": "NodePort"}},
	}}
}

test_clusterip_admitted if {
	count(no_nodeport.deny) == 0 with input as {"request": {
		"kind": {"kind": "Service"},
		"object": {"metadata": {"name": "web"}, "spec": {"type": "ClusterIP"}},
	}}
}
