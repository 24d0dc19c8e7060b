# METADATA
# title: Widgets name an owner
# description: A custom resource (not a Kubernetes type), matched in every group.
# custom:
#   kind: validating
#   operations: [CREATE, UPDATE, DELETE]
#   resources:
#     - widgets
package portcullis.widget_owner

deny contains {"msg": "a widget needs an owner label"} if {
	input.request.operation != "DELETE"
	not input.request.object.metadata.labels.owner
}
