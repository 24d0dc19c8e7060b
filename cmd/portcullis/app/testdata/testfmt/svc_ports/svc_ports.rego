# METADATA
# title: Service types
# custom:
#   kind: validating
#   resources: [services]
#   settings:
#     allowed_types: array
package portcullis.svc_ports

allowed := object.get(data.portcullis.config.policies.svc_ports, "allowed_types", ["ClusterIP"])

deny contains {"msg": sprintf("Service type %s is not allowed", [input.request.object.spec.type])} if {
	input.request.kind.kind == "Service"
	not input.request.object.spec.type in allowed
}
