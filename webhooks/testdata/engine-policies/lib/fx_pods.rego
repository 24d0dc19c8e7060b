# METADATA
# title: Fixture pod helpers
# description: A library package, not a policy.
package portcullis.lib.fx_pods

containers := [c |
	some field in ["initContainers", "containers"]
	some c in object.get(input.request.object, ["spec", field], [])
]
