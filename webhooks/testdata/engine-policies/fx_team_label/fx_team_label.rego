# METADATA
# title: Team label
# description: Objects carry a team label naming a known team.
# custom:
#   kind: validating
#   enforcement: warn
#   failure_mode: allow
package portcullis.fx_team_label

deny contains {"msg": sprintf("%s %q has no team label", [input.request.kind.kind, input.request.name])} if {
	input.request.operation in {"CREATE", "UPDATE"}
	not input.request.object.metadata.labels.team
}

deny contains {"msg": sprintf("team %q is not one of: %s", [team, concat(", ", teams)])} if {
	team := input.request.object.metadata.labels.team
	not team in teams
}
