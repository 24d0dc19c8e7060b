# METADATA
# title: Pod Security Standards
# description: |
#   The Kubernetes Pod Security Standards, baseline and restricted, at the
#   latest version (v1.37 semantics), in exact agreement with upstream Pod
#   Security Admission (k8s.io/pod-security-admission v0.37.2): the same
#   checks, the same allowed values, the same container/pod precedence and
#   the same messages ("<ForbiddenReason> (<ForbiddenDetail>)").
#
#   One file per upstream check (check_<id>.rego) registers the check in
#   `checks` and, when the pod fails it, its reason and detail in `result`.
#   This file picks the level, applies exemptions and update skipping, and
#   assembles `deny` (or `warn` for pod templates in templates: warn mode).
#
#   Reads: the pod (Pod, pods/ephemeralcontainers) or pod template (workload
#   kinds), input.request.{operation,subResource,namespace,userInfo.username},
#   input.request.oldObject on Pod updates, input.namespace.labels (the Pod
#   Security Admission labels), and policies.pod_security config.
# custom:
#   settings:
#     level: string
#     namespace_levels: object
#     exemptions:
#       namespaces: array
#       usernames: array
#       runtime_classes: array
#     templates: string
#     label_precedence: string
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
#     - pods/ephemeralcontainers
#     - deployments
#     - replicasets
#     - statefulsets
#     - daemonsets
#     - jobs
#     - cronjobs
#     - replicationcontrollers
#     - podtemplates
package portcullis.pod_security

import data.portcullis.lib.kubernetes

# ---------------------------------------------------------------------------
# Configuration (policies.pod_security in config.yaml).

# Read directly (not through kubernetes.policy_config): this runs on every
# request and a rule reference is much cheaper than a function call.
settings := s if {
	s := data.portcullis.config.policies.pod_security
	is_object(s)
} else := {}

# The levels in increasing strictness. "privileged" (no checks) is accepted in
# namespace_levels, as in upstream PSA, to switch checks off for a namespace.
level_rank := {"privileged": 0, "baseline": 1, "restricted": 2}

configured_level := l if {
	l := settings.level
	l != null
} else := "restricted"

namespace_levels := m if {
	m := settings.namespace_levels
	is_object(m)
} else := {}

request_namespace := ns if {
	ns := input.request.namespace
	ns != null
} else := ""

# config_level is the level the configuration gives this request: an exact
# namespace_levels key wins; otherwise, of the glob patterns matching the
# namespace, the strictest level (so overlapping patterns resolve the same way
# whatever their order); otherwise the default level. An unknown level fails
# closed: it is enforced as restricted (and reported as a warning, see warn
# below).
config_level := _normalized(configured_level) if {
	count(namespace_levels) == 0
} else := _normalized(namespace_levels[request_namespace]) if {
	request_namespace != ""
	namespace_levels[request_namespace]
} else := max_level if {
	some max_level in namespace_level_match
} else := _normalized(configured_level)

# namespace_level_match holds the strictest namespace_levels glob level
# matching the namespace (empty when none matches).
namespace_level_match contains max_level if {
	request_namespace != ""
	ranks := {level_rank[_normalized(l)] |
		some pattern, l in namespace_levels
		glob.match(pattern, [], request_namespace)
	}
	count(ranks) > 0
	some max_level, rank in level_rank
	rank == max(ranks)
}

# namespace_configured: namespace_levels names this namespace (exactly or by
# a glob).
namespace_configured if {
	request_namespace != ""
	namespace_levels[request_namespace]
}

namespace_configured if count(namespace_level_match) > 0

# ---------------------------------------------------------------------------
# Pod Security Admission namespace labels (input.namespace.labels), read as
# upstream's api.PolicyToEvaluate does: the enforce label picks the enforced
# level (an invalid value enforces restricted); the warn and audit labels add
# warnings and audit entries at their own levels (an invalid value switches
# them off); an enforce label stricter than the warn level raises the warn
# level to it. label_precedence decides between the enforce label and
# namespace_levels: labels (default, like PSA: the label wins), config (a
# namespace_levels entry wins) or ignore (labels are not read).

label_precedence := object.get(settings, "label_precedence", "labels")

psa_labels := l if {
	label_precedence != "ignore"
	l := input.namespace.labels
	is_object(l)
} else := {}

# The label of each mode and of its version, spelled out: they are read on
# every request, and a constant lookup costs less than building the key.
_level_key := {
	"enforce": "pod-security.kubernetes.io/enforce",
	"warn": "pod-security.kubernetes.io/warn",
	"audit": "pod-security.kubernetes.io/audit",
}

_version_key := {
	"enforce": "pod-security.kubernetes.io/enforce-version",
	"warn": "pod-security.kubernetes.io/warn-version",
	"audit": "pod-security.kubernetes.io/audit-version",
}

# _label_level(mode) is the mode's label level, or undefined when absent.
_label_level(mode) := l if {
	l := psa_labels[_level_key[mode]]
	level_rank[l]
} else := "invalid" if psa_labels[_level_key[mode]]

# _label_version(mode) is the mode's version label when valid ("latest" or
# v1.<n>), else "latest" (as upstream's ParseVersion).
_label_version(mode) := v if {
	v := psa_labels[_version_key[mode]]
	regex.match(`^v1\.([0-9]|[1-9][0-9]*)$`, v)
} else := "latest"

# The label level of each mode, once per request (rules are evaluated once
# per query, function calls every time).
enforce_label := _label_level("enforce")

warn_label := _label_level("warn")

audit_label := _label_level("audit")

# level is the level enforced on this request.
level := config_level if {
	not enforce_label
} else := config_level if {
	label_precedence == "config"
	namespace_configured
} else := "restricted" if {
	enforce_label == "invalid"
} else := enforce_label

# enforce_version names the enforced level in messages ("restricted:latest").
enforce_version := _label_version("enforce")

# warn_level and audit_level: privileged (nothing) unless labelled.
warn_level := "privileged" if {
	warn_label == "invalid"
} else := l if {
	l := warn_label
} else := l if {
	l := enforce_label
	l != "invalid"
	l != "privileged"
} else := "privileged"

warn_version := _label_version("warn") if {
	warn_label
} else := _label_version("warn") if {
	psa_labels[_version_key.warn]
} else := enforce_version if {
	enforce_label
} else := "latest"

audit_level := l if {
	l := audit_label
	l != "invalid"
} else := "privileged"

audit_version := _label_version("audit")

_normalized(l) := l if level_rank[l]

else := "restricted"

invalid_levels contains l if {
	some l in array.concat([configured_level], [l | some l in namespace_levels])
	not level_rank[l]
}

exemptions := e if {
	e := settings.exemptions
	is_object(e)
} else := {}

# Templates are denied by default; templates: warn turns their violations
# into warnings (upstream PSA itself only warns and audits on templates).
templates_mode := object.get(settings, "templates", "deny")

# ---------------------------------------------------------------------------
# What is evaluated, mirroring upstream admission.go.

operation := input.request.operation

subresource := s if {
	s := input.request.subResource
	s != null
} else := ""

# The pod under review: pod.metadata and pod.spec (from the Pod or the
# template), as the lib finds it.
spec := kubernetes.pod_spec

metadata := kubernetes.pod_metadata

# Pods: the object itself and the ephemeralcontainers subresource (both carry
# the whole Pod). Other pod subresources (status, binding, eviction, exec,
# resize, ...) cannot add what the checks look at and are ignored.
evaluated if {
	kubernetes.is_pod
	subresource in {"", "ephemeralcontainers"}
	not insignificant_pod_update
}

# Workloads: the pod template, on the object itself only (scale, status and
# the like carry no template).
evaluated if {
	kubernetes.is_template
	subresource == ""
}

# insignificant_pod_update mirrors upstream isSignificantPodUpdate: on a Pod
# UPDATE the only mutable fields that can change the security posture are
# container images (and new ephemeral containers), so an update that keeps
# the same containers with the same images is not re-evaluated. Without an
# old object the update is evaluated (fail closed).
insignificant_pod_update if {
	operation == "UPDATE"
	old_spec := _get(_get(input.request, "oldObject", {}), "spec", {})
	every field in ["containers", "initContainers"] {
		new_list := _list(spec, field)
		old_list := _list(old_spec, field)
		count(new_list) == count(old_list)
		every i, c in new_list {
			_get(c, "image", "") == _get(old_list[i], "image", "")
		}
	}
	old_ephemeral := _list(old_spec, "ephemeralContainers")
	every c in _list(spec, "ephemeralContainers") {
		# The first old ephemeral container with the same name, as upstream.
		matches := [oc | some oc in old_ephemeral; _get(oc, "name", "") == _get(c, "name", "")]
		count(matches) > 0
		_get(matches[0], "image", "") == _get(c, "image", "")
	}
}

# PSA-style exemptions. Namespaces are names or globs; usernames and runtime
# classes are exact strings, as upstream. Empty values never match.
exempt if {
	request_namespace != ""
	kubernetes.namespace_matches(request_namespace, object.get(exemptions, "namespaces", []))
}

exempt if {
	username := input.request.userInfo.username
	is_string(username)
	username != ""
	username in object.get(exemptions, "usernames", [])
}

exempt if {
	runtime_class := spec.runtimeClassName
	is_string(runtime_class)
	runtime_class != ""
	runtime_class in object.get(exemptions, "runtime_classes", [])
}

# checks_apply: the request is one the checks look at, at some level.
checks_apply if {
	operation in {"CREATE", "UPDATE"}
	evaluated
	not exempt
}

applies if {
	checks_apply
	level != "privileged"
}

# ---------------------------------------------------------------------------
# The check registry: which checks run at the level.

# checks is the check registry, as upstream's: each check's level and the
# baseline checks it replaces at restricted (for example restrictedVolumes
# replaces hostPathVolumes). check_<id>.rego computes result.<id> (reason and
# detail) when the pod fails the check. As upstream, restricted runs every
# baseline check except those a restricted check overrides. A constant
# object rather than one rule per file: enumerating 19 rules on every request
# costs more than all the checks of a typical pod.
checks := {
	"appArmorProfile": {"level": "baseline", "overrides": []},
	"capabilities_baseline": {"level": "baseline", "overrides": []},
	"hostNamespaces": {"level": "baseline", "overrides": []},
	"hostPathVolumes": {"level": "baseline", "overrides": []},
	"hostPorts": {"level": "baseline", "overrides": []},
	"hostProbesAndHostLifecycle": {"level": "baseline", "overrides": []},
	"privileged": {"level": "baseline", "overrides": []},
	"procMount": {"level": "baseline", "overrides": []},
	"seLinuxOptions": {"level": "baseline", "overrides": []},
	"seccompProfile_baseline": {"level": "baseline", "overrides": []},
	"sysctls": {"level": "baseline", "overrides": []},
	"windowsHostProcess": {"level": "baseline", "overrides": []},
	"allowPrivilegeEscalation": {"level": "restricted", "overrides": []},
	"capabilities_restricted": {"level": "restricted", "overrides": ["capabilities_baseline"]},
	"procMount_restricted": {"level": "restricted", "overrides": ["procMount"]},
	"restrictedVolumes": {"level": "restricted", "overrides": ["hostPathVolumes"]},
	"runAsNonRoot": {"level": "restricted", "overrides": []},
	"runAsUser": {"level": "restricted", "overrides": []},
	"seccompProfile_restricted": {"level": "restricted", "overrides": ["seccompProfile_baseline"]},
}

# active_checks[level] lists the checks run at each level, as upstream's
# registry derives them from checks: baseline runs the baseline checks;
# restricted runs every check except the baseline checks a restricted check
# overrides. Spelled out (and kept equal to what checks implies by
# test_active_checks_follow_the_registry) so that no request recomputes it.
active_checks := {
	"privileged": set(),
	"baseline": {
		"appArmorProfile", "capabilities_baseline", "hostNamespaces", "hostPathVolumes",
		"hostPorts", "hostProbesAndHostLifecycle", "privileged", "procMount",
		"seLinuxOptions", "seccompProfile_baseline", "sysctls", "windowsHostProcess",
	},
	"restricted": {
		"appArmorProfile", "hostNamespaces", "hostPorts", "hostProbesAndHostLifecycle",
		"privileged", "seLinuxOptions", "sysctls", "windowsHostProcess",
		"allowPrivilegeEscalation", "capabilities_restricted", "procMount_restricted",
		"restrictedVolumes", "runAsNonRoot", "runAsUser", "seccompProfile_restricted",
	},
}

# violations holds one object per failing check; level is the check's own
# level (a privileged container fails a "baseline" check also in a restricted
# namespace). msg is upstream's "<reason> (<detail>)".
violations contains {"msg": msg, "check": id, "level": checks[id].level} if {
	applies
	some id in active_checks[level]
	msg := _message(result[id])
}

# _message is upstream's "<reason> (<detail>)", or the reason alone when the
# detail is empty (forbidden sysctls with an empty name).
_message(failure) := failure.reason if failure.detail == ""

else := sprintf("%s (%s)", [failure.reason, failure.detail])

template_warn_mode if {
	kubernetes.is_template
	templates_mode == "warn"
}

deny contains violation if {
	not template_warn_mode
	some violation in violations
}

warn contains violation if {
	template_warn_mode
	some violation in violations
}

warn contains {"msg": sprintf("unknown level %q in configuration, enforcing \"restricted\"", [l])} if {
	applies
	some l in invalid_levels
}

# The warn label: upstream's warning, only on a request the enforced level
# admits ("would violate PodSecurity "baseline:latest": <details>").
warn contains {"msg": sprintf("would violate PodSecurity %q: %s", [concat(":", [warn_level, warn_version]), _details(vs)])} if {
	checks_apply
	warn_level != "privileged"
	count(violations) == 0
	vs := _violations_at(warn_level)
	count(vs) > 0
}

# The audit label: upstream's audit-violations annotation, as an audit entry
# (the audited-by annotation, the decision log and reports carry it).
audit contains {"msg": sprintf("would violate PodSecurity %q: %s", [concat(":", [audit_level, audit_version]), _details(vs)])} if {
	checks_apply
	audit_level != "privileged"
	vs := _violations_at(audit_level)
	count(vs) > 0
}

# _violations_at(l) are the violations at level l (violations is the
# enforced level's, computed once).
_violations_at(l) := violations if {
	l == level
	applies
} else := {v |
	some id in active_checks[l]
	v := {"msg": _message(result[id]), "check": id, "level": checks[id].level}
}

# _details joins violation messages in upstream's order (baseline checks,
# then restricted checks, each by ID), as its ForbiddenDetail.
_details(vs) := concat(", ", [x[2] | some x in sort([[v.level, v.check, v.msg] | some v in vs])])

# ---------------------------------------------------------------------------
# Helpers shared by the checks.
#
# Go decodes a JSON null as the zero value, so a null field must read exactly
# like an absent one. The checks test fields with plain references
# (c.securityContext.privileged == true is undefined for an absent or null
# field) and object.get with a path (which treats a null step as absent), and
# call helper functions only to build the message of a failing check: a user
# function call costs far more than a reference, and the passing path runs for
# every container of every pod.

# _get is o[k], or d when o[k] is absent or null.
_get(o, k, d) := v if {
	v := o[k]
	v != null
} else := d

# _list is o[k] when it is an array, else [].
_list(o, k) := v if {
	v := o[k]
	is_array(v)
} else := []

# _set is o[k] when present and not null (Go: a non-nil pointer).
_set(o, k) if o[k] != null

# _str is s, or "" for null (a null list element decodes to "").
_str(s) := "" if s == null

else := s

pod_security_context := _get(spec, "securityContext", {})

# containers: every container in upstream's visiting order (init, regular,
# ephemeral), as an array so duplicates and order are kept.
containers := [c |
	some field in ["initContainers", "containers", "ephemeralContainers"]
	some c in spec[field]
]

volumes := [v | some v in spec.volumes]

_name(c) := _get(c, "name", "")

_security_context(c) := _get(c, "securityContext", {})

# names_at lists the names of the containers at the given indices, in order.
names_at(indices) := [_name(containers[i]) | some i in sort(indices)]

# Windows pods (spec.os.name=windows) skip the Linux-only restricted checks.
windows_pod if spec.os.name == "windows"

# Pods in a user namespace (hostUsers: false) relax some checks since v1.35.
user_namespace_pod if spec.hostUsers == false

# join_quote renders names as upstream's joinQuote: "a", "b".
join_quote(items) := "" if count(items) == 0

join_quote(items) := concat("", ["\"", concat("\", \"", items), "\""]) if count(items) > 0

pluralize(singular, _, 1) := singular

pluralize(_, plural, n) := plural if n != 1

# containers_phrase renders `container "a"` / `containers "a", "b"`.
containers_phrase(names) := sprintf("%s %s", [pluralize("container", "containers", count(names)), join_quote(names)])
