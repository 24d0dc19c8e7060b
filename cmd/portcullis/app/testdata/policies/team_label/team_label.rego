# METADATA
# title: Team label
# description: Pods and Deployment templates carry a team label.
# custom:
#   kind: validating
#   enforcement: deny
package portcullis.team_label

labels := input.request.object.metadata.labels if input.request.kind.kind == "Pod"

labels := object.get(input.request.object.spec.template.metadata, "labels", {}) if input.request.kind.kind == "Deployment"

deny contains {"msg": "metadata.labels.team is required"} if {
	input.request.operation in {"CREATE", "UPDATE"}
	input.request.kind.kind in {"Pod", "Deployment"}
	not labels.team
}

warn contains {"msg": sprintf("team %q is not a known team", [labels.team])} if {
	not labels.team in {"payments", "search", "unassigned"}
}
