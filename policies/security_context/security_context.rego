# METADATA
# title: Default security context
# description: |
#   Fills in secure defaults a new Pod left unset, so that ordinary pods pass
#   the restricted Pod Security Standard without every manifest spelling it
#   out. Never overrides a value the user set: every edit is a `default` (only
#   where the field is absent) or an append of "ALL" to a drop list lacking it.
#
#   Pod level (spec.securityContext):
#     runAsNonRoot: true            unless the pod or any container explicitly
#                                   sets runAsUser: 0 (an explicit root choice)
#     seccompProfile RuntimeDefault
#     appArmorProfile RuntimeDefault only when nothing in the pod mentions
#                                   AppArmor (no pod or container field, no
#                                   container.apparmor.security.beta.kubernetes.io/*
#                                   annotation). Set at pod level so that
#                                   containers injected later (sidecars)
#                                   inherit it and reinvocation adds nothing.
#   Every initContainer and container (securityContext):
#     allowPrivilegeEscalation: false  not for privileged containers or ones
#                                   adding SYS_ADMIN: the API rejects that pair
#     capabilities.drop gains "ALL" when missing; explicit adds are kept (the
#                                   runtime drops everything, then adds those)
#     readOnlyRootFilesystem: true  only when configured
#
#   Windows pods (spec.os.name: windows) are left alone: the API forbids these
#   Linux fields on them.
#
#   Reads: metadata.annotations, spec.os, spec.securityContext,
#   spec.{initContainers,containers}[*].securityContext.
#   Config (policies.security_context): defaults.{run_as_non_root,
#   seccomp_profile, apparmor_profile, allow_privilege_escalation,
#   drop_all_capabilities, read_only_root_filesystem} (booleans),
#   namespaces (names or globs the policy applies to, default all),
#   exclude_namespaces (names or globs it never touches).
#   Pod templates of workloads (Deployment, ReplicaSet, StatefulSet,
#   DaemonSet, Job, CronJob, ReplicationController, PodTemplate) get the same
#   defaults on CREATE and UPDATE (config `templates`, default true), so a
#   plain Deployment passes pod_security at apply time, the way Kyverno's
#   autogen rules do. GitOps tools see the defaulted fields as server-side
#   changes; set templates: false to mutate Pods only.
# custom:
#   kind: mutating
#   resources:
#     - pods
#     - deployments
#     - replicasets
#     - statefulsets
#     - daemonsets
#     - jobs
#     - cronjobs
#     - replicationcontrollers
#     - podtemplates
package portcullis.security_context

import data.portcullis.lib.kubernetes

settings := kubernetes.policy_config("security_context")

# The documented defaults (config.yaml); a config file may switch any off.
default_switches := {
	"run_as_non_root": true,
	"seccomp_profile": true,
	"apparmor_profile": true,
	"allow_privilege_escalation": true,
	"drop_all_capabilities": true,
	"read_only_root_filesystem": false,
}

switches := object.union(default_switches, object.get(settings, "defaults", {}))

enabled(name) if switches[name] == true

included_namespaces := object.get(settings, "namespaces", ["*"])

excluded_namespaces := array.concat(exempt_namespaces, object.get(settings, "exclude_namespaces", []))

# The global exemptions (the engine skips them too; repeated here so the
# policy is right on stock OPA).
exempt_namespaces := ns if {
	ns := data.portcullis.config.exempt_namespaces
} else := []

# target_operation is true for what the policy mutates: new Pods, and pod
# templates of workloads being created or updated.
target_operation if {
	kubernetes.is_pod
	kubernetes.operation == "CREATE"
}

target_operation if {
	kubernetes.is_template
	kubernetes.is_create_or_update
	object.get(settings, "templates", true) == true
}

# spec_path is where the pod spec lives in the object under review.
spec_path := ["spec"] if kubernetes.is_pod

spec_path := array.concat(kubernetes.template_paths[kubernetes.kind], ["spec"]) if kubernetes.is_template

# at returns the edit path for the pod-spec-relative path p.
at(p) := array.concat(spec_path, p)

# applies is true for a new Pod or a workload's pod template (not a
# subresource) in a namespace the policy covers, on Linux.
applies if {
	target_operation
	kubernetes.pod_spec
	object.get(input.request, "subResource", "") == ""
	ns := object.get(input.request, "namespace", "")
	kubernetes.namespace_matches(ns, included_namespaces)
	not kubernetes.namespace_matches(ns, excluded_namespaces)
	object.get(kubernetes.pod_spec, ["os", "name"], "linux") != "windows"
}

pod_sc := object.get(kubernetes.pod_spec, "securityContext", {})

# Containers whose security context the policy defaults: initContainers and
# containers (ephemeral containers only arrive through a subresource).
defaulted := [entry |
	some entry in kubernetes.containers
	entry.field in {"initContainers", "containers"}
]

# unset is true when the field at path under obj is absent or null.
unset(obj, path) if object.get(obj, path, null) == null

# --- pod level ---------------------------------------------------------------

# explicit_root is true when the user asked for UID 0 anywhere.
explicit_root if pod_sc.runAsUser == 0

explicit_root if {
	some entry in kubernetes.containers
	entry.container.securityContext.runAsUser == 0
}

mutate contains {"op": "default", "path": at(["securityContext", "runAsNonRoot"]), "value": true} if {
	applies
	enabled("run_as_non_root")
	unset(pod_sc, ["runAsNonRoot"])
	not explicit_root
}

mutate contains {"op": "default", "path": at(["securityContext", "seccompProfile"]), "value": {"type": "RuntimeDefault"}} if {
	applies
	enabled("seccomp_profile")
	unset(pod_sc, ["seccompProfile"])
}

apparmor_annotation_prefix := "container.apparmor.security.beta.kubernetes.io/"

# apparmor_mentioned is true when the user chose AppArmor for any part of the
# pod: then the choice is theirs entirely (a pod-level default would also
# contradict a container annotation, which the API rejects).
apparmor_mentioned if not unset(pod_sc, ["appArmorProfile"])

apparmor_mentioned if {
	some entry in kubernetes.containers
	not unset(entry.container, ["securityContext", "appArmorProfile"])
}

apparmor_mentioned if {
	some key, _ in kubernetes.pod_annotations
	startswith(key, apparmor_annotation_prefix)
}

mutate contains {"op": "default", "path": at(["securityContext", "appArmorProfile"]), "value": {"type": "RuntimeDefault"}} if {
	applies
	enabled("apparmor_profile")
	not apparmor_mentioned
}

# --- containers --------------------------------------------------------------

# escalation_required is true when the API would reject
# allowPrivilegeEscalation: false for the container.
escalation_required(c) if c.securityContext.privileged == true

escalation_required(c) if {
	some cap in object.get(c, ["securityContext", "capabilities", "add"], [])
	cap in {"SYS_ADMIN", "CAP_SYS_ADMIN"}
}

mutate contains {
	"op": "default",
	"path": at([entry.field, {"name": entry.name}, "securityContext", "allowPrivilegeEscalation"]),
	"value": false,
} if {
	applies
	enabled("allow_privilege_escalation")
	some entry in defaulted
	unset(entry.container, ["securityContext", "allowPrivilegeEscalation"])
	not escalation_required(entry.container)
}

# A drop list without ALL gains it rather than being left alone: the user
# listed what they surely do not need, not what they need (that is `add`,
# which is kept).
mutate contains {
	"op": "append",
	"path": at([entry.field, {"name": entry.name}, "securityContext", "capabilities", "drop"]),
	"value": ["ALL"],
} if {
	applies
	enabled("drop_all_capabilities")
	some entry in defaulted
	not "ALL" in object.get(entry.container, ["securityContext", "capabilities", "drop"], [])
}

mutate contains {
	"op": "default",
	"path": at([entry.field, {"name": entry.name}, "securityContext", "readOnlyRootFilesystem"]),
	"value": true,
} if {
	applies
	enabled("read_only_root_filesystem")
	some entry in defaulted
	unset(entry.container, ["securityContext", "readOnlyRootFilesystem"])
}
