# METADATA
# title: Default labels
# description: Marks pods as managed and defaults them to non-root.
# custom:
#   kind: mutating
#   resources:
#     - pods
package portcullis.default_labels

mutate contains {"op": "default", "path": ["metadata", "labels", "portcullis.dev/managed"], "value": "true"} if {
	input.request.operation == "CREATE"
}

mutate contains {"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true} if {
	input.request.operation == "CREATE"
}
