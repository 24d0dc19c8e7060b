# METADATA
# title: After
# description: Runs after runaway (ID order), so it is not evaluated once the deadline has passed.
# custom:
#   kind: validating
#   enforcement: deny
package portcullis.zz_after

deny contains {"msg": "privileged"} if {
	some c in input.request.object.spec.containers
	c.securityContext.privileged == true
}
