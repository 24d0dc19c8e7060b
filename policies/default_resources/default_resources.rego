# METADATA
# title: Default resource requests
# description: |
#   Gives every container of a new Pod that sets no resource requests the
#   requests in policies.default_resources.requests, so the scheduler and
#   quota see them. Never overrides a request the user set.
#   Reads: spec.{initContainers,containers}[*].resources.requests.
# custom:
#   settings:
#     requests: object
#   kind: mutating
#   resources:
#     - pods
package portcullis.default_resources

import data.portcullis.lib.kubernetes

settings := kubernetes.policy_config("default_resources")

requests := object.get(settings, "requests", {"cpu": "10m", "memory": "32Mi"})

mutate contains {
	"op": "merge",
	"path": ["spec", field, {"name": c.name}, "resources", "requests"],
	"value": requests,
} if {
	kubernetes.is_pod
	kubernetes.operation == "CREATE"
	kubernetes.subresource == ""
	some field in ["initContainers", "containers"]
	some c in object.get(kubernetes.pod_spec, field, [])
	count(object.get(c, ["resources", "requests"], {})) == 0
}
