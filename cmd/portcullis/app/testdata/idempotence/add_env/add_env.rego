# METADATA
# title: Add env
# description: Appends a named env entry; a second pass skips it (idempotent).
# custom:
#   kind: mutating
#   resources:
#     - pods
package portcullis.add_env

mutate contains {"op": "append", "path": ["spec", "containers", 0, "env"], "value": [{"name": "REGION", "value": "eu"}]} if {
	input.request.kind.kind == "Pod"
}
