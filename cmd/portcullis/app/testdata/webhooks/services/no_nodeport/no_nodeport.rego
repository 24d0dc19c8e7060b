# METADATA
# title: No NodePort Services
# description: Services must not open node ports.
# custom:
#   kind: validating
#   resources:
#     - services
package portcullis.no_nodeport

deny contains {"msg": "Service type NodePort is not allowed"} if {
	input.request.kind.kind == "Service"
	input.request.object.spec.type == "NodePort"
}
