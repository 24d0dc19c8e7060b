# METADATA
# title: No privileged containers
# description: Containers must not run privileged.
# custom:
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
package portcullis.no_privileged

deny contains {"msg": sprintf("container %q must not be privileged", [c.name])} if {
	some c in input.request.object.spec.containers
	c.securityContext.privileged == true
}
