# METADATA
# title: Immutable team
# description: The team label of a Pod does not change on update.
# custom:
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
package portcullis.immutable_team

deny contains {"msg": sprintf("team label changed from %q to %q", [old, new])} if {
	input.request.operation == "UPDATE"
	old := object.get(input.request.oldObject.metadata, ["labels", "team"], "")
	new := object.get(input.request.object.metadata, ["labels", "team"], "")
	old != new
}
