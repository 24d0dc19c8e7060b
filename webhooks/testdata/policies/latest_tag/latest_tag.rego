# METADATA
# title: No latest tag
# description: Images are pinned; the latest tag is only warned about.
# custom:
#   kind: validating
#   enforcement: warn
#   resources:
#     - pods
package portcullis.latest_tag

deny contains {"msg": sprintf("container %q uses the latest tag", [c.name])} if {
	some c in input.request.object.spec.containers
	endswith(c.image, ":latest")
}
