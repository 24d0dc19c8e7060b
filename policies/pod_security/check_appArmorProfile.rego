package portcullis.pod_security

# appArmorProfile (baseline): spec.securityContext.appArmorProfile.type and
# containers[*].securityContext.appArmorProfile.type (allowed: RuntimeDefault,
# Localhost, undefined), and the deprecated annotations
# container.apparmor.security.beta.kubernetes.io/* (allowed: runtime/default,
# localhost/*, empty, undefined).

apparmor_profile_types := {"RuntimeDefault", "Localhost"}

apparmor_annotation_prefix := "container.apparmor.security.beta.kubernetes.io/"

_allowed_apparmor_annotation("")

_allowed_apparmor_annotation("runtime/default")

_allowed_apparmor_annotation(v) if startswith(v, "localhost/")

# A profile that is set (not null) with a type that is not allowed; a missing
# type reads as "".
_pod_bad_apparmor := [_str(object.get(profile, "type", "")) |
	profile := pod_security_context.appArmorProfile
	profile != null
	not apparmor_profile_types[object.get(profile, "type", "")]
]

_containers_bad_apparmor := [{"index": i, "type": _str(object.get(profile, "type", ""))} |
	some i, c in containers
	profile := c.securityContext.appArmorProfile
	profile != null
	not apparmor_profile_types[object.get(profile, "type", "")]
]

_bad_apparmor_annotations := sort([sprintf("%s=%q", [k, _str(value)]) |
	some k, value in metadata.annotations
	startswith(k, apparmor_annotation_prefix)
	not _allowed_apparmor_annotation(_str(value))
])

result["appArmorProfile"] := {
	"reason": pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", count(values)),
	"detail": sprintf("%s must not set AppArmor profile type to %s", [concat(" and ", setters), join_quote(values)]),
} if {
	(count(_pod_bad_apparmor) + count(_containers_bad_apparmor)) + count(_bad_apparmor_annotations) > 0
	setters := array.concat(
		array.concat(
			["pod" | count(_pod_bad_apparmor) > 0],
			[containers_phrase(names_at({e.index | some e in _containers_bad_apparmor})) | count(_containers_bad_apparmor) > 0],
		),
		[pluralize("annotation", "annotations", count(_bad_apparmor_annotations)) | count(_bad_apparmor_annotations) > 0],
	)
	types := {t | some t in _pod_bad_apparmor} | {e.type | some e in _containers_bad_apparmor}
	values := array.concat(sort(types), _bad_apparmor_annotations)
}
