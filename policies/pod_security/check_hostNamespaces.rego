package portcullis.pod_security

# hostNamespaces (baseline): spec.hostNetwork, spec.hostPID, spec.hostIPC.
# Allowed: undefined, false.

result["hostNamespaces"] := {
	"reason": "host namespaces",
	"detail": concat(", ", used),
} if {
	used := [sprintf("%s=true", [field]) | some field in ["hostNetwork", "hostPID", "hostIPC"]; spec[field] == true]
	count(used) > 0
}
