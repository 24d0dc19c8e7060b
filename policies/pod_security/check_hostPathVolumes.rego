package portcullis.pod_security

# hostPathVolumes (baseline; replaced by restrictedVolumes at restricted):
# spec.volumes[*].hostPath. Allowed: undefined/null.

result["hostPathVolumes"] := {
	"reason": "hostPath volumes",
	"detail": sprintf("%s %s", [pluralize("volume", "volumes", count(bad)), join_quote(bad)]),
} if {
	bad := [_get(v, "name", "") | some v in volumes; v.hostPath != null]
	count(bad) > 0
}
