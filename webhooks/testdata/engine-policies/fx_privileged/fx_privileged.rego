# METADATA
# title: No privileged containers
# description: |
#   Containers must not run privileged.
# custom:
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
#     - pods/ephemeralcontainers
package portcullis.fx_privileged

import data.portcullis.lib.fx_pods

deny contains {"msg": sprintf("container %q must not be privileged", [c.name]), "field": "securityContext.privileged"} if {
	some c in fx_pods.containers
	c.securityContext.privileged == true
}

warn contains {"msg": sprintf("container %q uses the latest tag", [c.name])} if {
	some c in fx_pods.containers
	endswith(c.image, ":latest")
}
