# METADATA
# title: Add toleration
# description: Appends an unnamed toleration on every pass (not idempotent).
# custom:
#   kind: mutating
#   resources:
#     - pods
package portcullis.add_toleration

mutate contains {"op": "append", "path": ["spec", "tolerations"], "value": [{"key": "spot", "operator": "Exists"}]} if {
	input.request.kind.kind == "Pod"
}
