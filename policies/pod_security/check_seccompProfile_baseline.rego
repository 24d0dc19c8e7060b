package portcullis.pod_security

# seccompProfile_baseline (baseline, v1.19+ field semantics; replaced by
# seccompProfile_restricted at restricted): spec.securityContext.seccompProfile.type
# and containers[*].securityContext.seccompProfile.type.
# Allowed: RuntimeDefault, Localhost, undefined.

seccomp_profile_types := {"RuntimeDefault", "Localhost"}

# A profile that is set (not null) with a type that is not allowed; a missing
# type reads as "".
_pod_bad_seccomp := [_str(object.get(profile, "type", "")) |
	profile := pod_security_context.seccompProfile
	profile != null
	not seccomp_profile_types[object.get(profile, "type", "")]
]

_containers_bad_seccomp := [{"index": i, "type": _str(object.get(profile, "type", ""))} |
	some i, c in containers
	profile := c.securityContext.seccompProfile
	profile != null
	not seccomp_profile_types[object.get(profile, "type", "")]
]

# _seccomp_explicit_result covers the pod or containers setting a bad type,
# shared by both levels.
_seccomp_explicit_result := {
	"reason": "seccompProfile",
	"detail": sprintf("%s must not set securityContext.seccompProfile.type to %s", [concat(" and ", setters), join_quote(sort(types))]),
} if {
	count(_pod_bad_seccomp) + count(_containers_bad_seccomp) > 0
	setters := array.concat(
		["pod" | count(_pod_bad_seccomp) > 0],
		[containers_phrase(names_at({e.index | some e in _containers_bad_seccomp})) | count(_containers_bad_seccomp) > 0],
	)
	types := {t | some t in _pod_bad_seccomp} | {e.type | some e in _containers_bad_seccomp}
}

result["seccompProfile_baseline"] := _seccomp_explicit_result
