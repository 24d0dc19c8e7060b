package portcullis.pod_security

# appArmorProfile (baseline): spec.securityContext.appArmorProfile.type and
# containers[*].securityContext.appArmorProfile.type (allowed: RuntimeDefault,
# Localhost, undefined), and the deprecated annotations
# container.apparmor.security.beta.kubernetes.io/* (allowed: runtime/default,
# localhost/*, empty, undefined).

checks["appArmorProfile"] := {"level": "baseline", "overrides": []}

apparmor_profile_types := {"RuntimeDefault", "Localhost"}

apparmor_annotation_prefix := "container.apparmor.security.beta.kubernetes.io/"

_allowed_apparmor_annotation("")

_allowed_apparmor_annotation("runtime/default")

_allowed_apparmor_annotation(v) if startswith(v, "localhost/")

# _bad_apparmor_type is the type a securityContext sets, when set and not allowed.
_bad_apparmor_type(security_context) := profile_type if {
	profile := _get(security_context, "appArmorProfile", null)
	profile != null
	profile_type := _get(profile, "type", "")
	not apparmor_profile_types[profile_type]
}

result["appArmorProfile"] := {
	"reason": pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", count(values)),
	"detail": sprintf("%s must not set AppArmor profile type to %s", [concat(" and ", setters), join_quote(values)]),
} if {
	pod_bad := [t | t := _bad_apparmor_type(pod_security_context)]
	bad_containers := [_name(c) | some c in containers; _bad_apparmor_type(_security_context(c))]
	types := {t | some c in containers; t := _bad_apparmor_type(_security_context(c))} | {t | some t in pod_bad}
	annotations := sort([sprintf("%s=%q", [k, v]) |
		some k, value in _get(metadata, "annotations", {})
		startswith(k, apparmor_annotation_prefix)
		v := _str(value)
		not _allowed_apparmor_annotation(v)
	])
	setters := array.concat(
		array.concat(
			["pod" | count(pod_bad) > 0],
			[containers_phrase(bad_containers) | count(bad_containers) > 0],
		),
		[pluralize("annotation", "annotations", count(annotations)) | count(annotations) > 0],
	)
	count(setters) > 0
	values := array.concat(sort(types), annotations)
}
