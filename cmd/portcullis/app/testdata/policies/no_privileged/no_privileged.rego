# METADATA
# title: No privileged containers
# description: Containers of Pods must not run privileged.
# custom:
#   kind: validating
#   enforcement: deny
package portcullis.no_privileged

deny contains {"msg": msg, "check": "privileged"} if {
	input.request.kind.kind == "Pod"
	some c in input.request.object.spec.containers
	c.securityContext.privileged == true
	msg := sprintf("container %q must not set securityContext.privileged=true", [c.name])
}
