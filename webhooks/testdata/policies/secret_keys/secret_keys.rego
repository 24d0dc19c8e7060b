# METADATA
# title: No password keys in Secrets
# description: |
#   Reads the keys of data and stringData, never echoes a value.
# custom:
#   kind: validating
#   resources:
#     - secrets
package portcullis.secret_keys

keys contains k if some k, _ in object.get(input.request.object, "data", {})

keys contains k if some k, _ in object.get(input.request.object, "stringData", {})

deny contains {"msg": sprintf("Secret %q must not carry a %q key", [input.request.name, k])} if {
	some k in keys
	k == "password"
}
