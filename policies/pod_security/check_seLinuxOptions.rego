package portcullis.pod_security

# seLinuxOptions (baseline): spec.securityContext.seLinuxOptions and
# containers[*].securityContext.seLinuxOptions. type allowed: undefined/empty,
# container_t, container_init_t, container_kvm_t, container_engine_t (v1.31+);
# user and role allowed: undefined/empty.

checks["seLinuxOptions"] := {"level": "baseline", "overrides": []}

selinux_types := {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

# _bad_selinux_options is the securityContext's seLinuxOptions when set and invalid.
_bad_selinux_options(security_context) := options if {
	options := _get(security_context, "seLinuxOptions", null)
	options != null
	_invalid_selinux_options(options)
}

_invalid_selinux_options(options) if not selinux_types[_get(options, "type", "")]

_invalid_selinux_options(options) if _get(options, "user", "") != ""

_invalid_selinux_options(options) if _get(options, "role", "") != ""

result["seLinuxOptions"] := {
	"reason": "seLinuxOptions",
	"detail": sprintf("%s set forbidden securityContext.seLinuxOptions: %s", [concat(" and ", setters), concat("; ", data_parts)]),
} if {
	pod_bad := [options | options := _bad_selinux_options(pod_security_context)]
	container_bad := [{"name": _name(c), "options": options} |
		some c in containers
		options := _bad_selinux_options(_security_context(c))
	]
	setters := array.concat(
		["pod" | count(pod_bad) > 0],
		[containers_phrase([b.name | some b in container_bad]) | count(container_bad) > 0],
	)
	count(setters) > 0
	all_bad := array.concat(pod_bad, [b.options | some b in container_bad])
	types := {t | some options in all_bad; t := _get(options, "type", ""); not selinux_types[t]}
	users := [1 | some options in all_bad; _get(options, "user", "") != ""]
	roles := [1 | some options in all_bad; _get(options, "role", "") != ""]
	data_parts := array.concat(
		[sprintf("%s %s", [pluralize("type", "types", count(types)), join_quote(sort(types))]) | count(types) > 0],
		array.concat(
			["user may not be set" | count(users) > 0],
			["role may not be set" | count(roles) > 0],
		),
	)
}
