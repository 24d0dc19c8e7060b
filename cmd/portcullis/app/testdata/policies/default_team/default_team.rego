# METADATA
# title: Default team
# description: Pods without a team label get team=unassigned.
# custom:
#   kind: mutating
#   resources:
#     - pods
package portcullis.default_team

mutate contains {"op": "default", "path": ["metadata", "labels", "team"], "value": "unassigned"} if {
	input.request.kind.kind == "Pod"
	input.request.operation == "CREATE"
}
