# METADATA
# title: No NodePort Services
# description: An example custom policy. Services must not open ports on every node.
# custom:
#   kind: validating
#   resources:
#     - services
package portcullis.no_nodeport

deny contains {"msg": msg} if {
	input.request.kind.kind == "Service"
	input.request.object.spec.type == "NodePort"
	msg := sprintf("Service %s: type NodePort is not allowed", [input.request.object.metadata.name])
}
