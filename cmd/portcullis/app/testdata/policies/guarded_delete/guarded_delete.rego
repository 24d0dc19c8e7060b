# METADATA
# title: Guarded delete
# description: Only members of group admins delete Pods.
# custom:
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
package portcullis.guarded_delete

deny contains {"msg": sprintf("user %q may not delete pods (not in group admins)", [input.request.userInfo.username])} if {
	input.request.operation == "DELETE"
	not "admins" in input.request.userInfo.groups
}
