# METADATA
# title: Conflict
# description: Two values for one complete rule at run time (eval_conflict_error) for Pods named conflict.
# custom:
#   kind: validating
#   enforcement: deny
package portcullis.conflict

level := "a" if input.request.kind.kind == "Pod"

level := "b" if input.request.object.metadata.name == "conflict"

deny contains {"msg": "never"} if level == "c"
