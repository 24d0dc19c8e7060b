package portcullis.pod_security

# seLinuxOptions (baseline): spec.securityContext.seLinuxOptions and
# containers[*].securityContext.seLinuxOptions. type allowed: undefined/empty,
# container_t, container_init_t, container_kvm_t, container_engine_t (v1.31+);
# user and role allowed: undefined/empty.

selinux_types := {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

_invalid_selinux_options(options) if not selinux_types[_get(options, "type", "")]

_invalid_selinux_options(options) if _get(options, "user", "") != ""

_invalid_selinux_options(options) if _get(options, "role", "") != ""

_pod_bad_selinux := [options |
	options := pod_security_context.seLinuxOptions
	options != null
	_invalid_selinux_options(options)
]

_containers_bad_selinux := [{"index": i, "options": options} |
	some i, c in containers
	options := c.securityContext.seLinuxOptions
	options != null
	_invalid_selinux_options(options)
]

result["seLinuxOptions"] := {
	"reason": "seLinuxOptions",
	"detail": sprintf("%s set forbidden securityContext.seLinuxOptions: %s", [concat(" and ", setters), concat("; ", data_parts)]),
} if {
	count(_pod_bad_selinux) + count(_containers_bad_selinux) > 0
	setters := array.concat(
		["pod" | count(_pod_bad_selinux) > 0],
		[containers_phrase(names_at({e.index | some e in _containers_bad_selinux})) | count(_containers_bad_selinux) > 0],
	)
	all_bad := array.concat(_pod_bad_selinux, [e.options | some e in _containers_bad_selinux])
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
