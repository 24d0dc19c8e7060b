# METADATA
# title: Declares no resources
# description: Applies to whatever the other rules send, registers nothing.
# custom:
#   kind: validating
#   enforcement: audit
package portcullis.everything

deny contains {"msg": "seen"} if false
