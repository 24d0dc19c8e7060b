# METADATA
# title: Runaway
# description: A comprehension that outlives any deadline, for Pods named slow.
# custom:
#   kind: validating
#   enforcement: deny
package portcullis.runaway

deny contains {"msg": "too many"} if {
	input.request.object.metadata.name == "slow"
	count([x | some x in numbers.range(1, 1000000000)]) > 1
}
