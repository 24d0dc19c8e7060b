# METADATA
# title: No NodePort services
# custom:
#   kind: validating
#   enforcement: block
#   resources: [services]
package portcullis.svc_ports

deny contains {"msg": "NodePort services are not allowed"} if {
	input.request.kind.kind == "Service"
	input.request.object.spec.type == "NodePort"
}
