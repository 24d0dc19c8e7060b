package portcullis.pod_security

# seccompProfile_baseline (baseline, v1.19+ field semantics; replaced by
# seccompProfile_restricted at restricted): spec.securityContext.seccompProfile.type
# and containers[*].securityContext.seccompProfile.type.
# Allowed: RuntimeDefault, Localhost, undefined.

checks["seccompProfile_baseline"] := {"level": "baseline", "overrides": []}

seccomp_profile_types := {"RuntimeDefault", "Localhost"}

# _bad_seccomp_type is the type a securityContext sets, when set and not allowed.
_bad_seccomp_type(security_context) := profile_type if {
	profile := _get(security_context, "seccompProfile", null)
	profile != null
	profile_type := _get(profile, "type", "")
	not seccomp_profile_types[profile_type]
}

pod_bad_seccomp := [t | t := _bad_seccomp_type(pod_security_context)]

containers_bad_seccomp := [{"name": _name(c), "type": t} |
	some c in containers
	t := _bad_seccomp_type(_security_context(c))
]

# _seccomp_explicit_result covers the pod or containers setting a bad type,
# shared by both levels.
_seccomp_explicit_result := {
	"reason": "seccompProfile",
	"detail": sprintf("%s must not set securityContext.seccompProfile.type to %s", [concat(" and ", setters), join_quote(sort(types))]),
} if {
	setters := array.concat(
		["pod" | count(pod_bad_seccomp) > 0],
		[containers_phrase([b.name | some b in containers_bad_seccomp]) | count(containers_bad_seccomp) > 0],
	)
	count(setters) > 0
	types := {t | some t in pod_bad_seccomp} | {b.type | some b in containers_bad_seccomp}
}

result["seccompProfile_baseline"] := _seccomp_explicit_result
