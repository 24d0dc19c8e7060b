# METADATA
# title: No NodePort services
# custom:
#   kind: validating
#   resources: [services]
package portcullis.svc_ports

violation contains {"msg": "NodePort services are not allowed"} if {
	input.request.kind.kind == "Service"
	input.request.object.spec.type == "NodePort"
}
