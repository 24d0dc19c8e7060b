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
#     runAsUser/runAsGroup          the configured run_as_user/run_as_group,
#                                   only when set and some container would
#                                   otherwise run as its image's user; when
#                                   unset, each such container gets a warning
#                                   (the kubelet refuses root images under
#                                   runAsNonRoot, see policies/README.md)
#     seccompProfile RuntimeDefault unless a legacy seccomp annotation
#                                   (seccomp.security.alpha.kubernetes.io/pod,
#                                   container.seccomp.security.alpha.kubernetes.io/*)
#                                   is present: the API rejects a field that
#                                   contradicts it, so that choice is the user's
#     appArmorProfile RuntimeDefault only when configured (off by default:
#                                   nodes without AppArmor refuse such pods)
#                                   and nothing in the pod mentions AppArmor
#                                   (no pod or container field, no
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
#   Windows pods (spec.os.name: windows, or HostProcess containers) are left
#   alone: the API forbids these Linux fields on them.
#
#   Reads: metadata.annotations, spec.os, spec.securityContext,
#   spec.{initContainers,containers}[*].securityContext.
#   Config (policies.security_context): defaults.{run_as_non_root,
#   seccomp_profile, apparmor_profile, allow_privilege_escalation,
#   drop_all_capabilities, read_only_root_filesystem} (booleans),
#   run_as_user, run_as_group (UID/GID numbers, unset by default),
#   namespaces (names or globs the policy applies to, default all),
#   exclude_namespaces (names or globs it never touches).
#   Pod templates of workloads (Deployment, ReplicaSet, StatefulSet,
#   DaemonSet, Job, CronJob, ReplicationController, PodTemplate) get the same
#   defaults on CREATE and UPDATE (config `templates`, default true), so a
#   plain Deployment passes pod_security at apply time, the way Kyverno's
#   autogen rules do. GitOps tools see the defaulted fields as server-side
#   changes; set templates: false to mutate Pods only.
# custom:
#   settings:
#     defaults:
#       run_as_non_root: boolean
#       seccomp_profile: boolean
#       apparmor_profile: boolean
#       allow_privilege_escalation: boolean
#       drop_all_capabilities: boolean
#       read_only_root_filesystem: boolean
#     templates: boolean
#     namespaces: array
#     exclude_namespaces: array
#     run_as_user: integer
#     run_as_group: integer
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
	"apparmor_profile": false,
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
	not host_process
}

# A HostProcess pod is a Windows pod even without spec.os: the Linux fields
# are not for it.
host_process if object.get(kubernetes.pod_spec, ["securityContext", "windowsOptions", "hostProcess"], false) == true

host_process if {
	some entry in kubernetes.containers
	object.get(entry.container, ["securityContext", "windowsOptions", "hostProcess"], false) == true
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

# The choice for images of unknown user. runAsNonRoot: true is what the
# restricted standard requires, but the kubelet refuses to start a container
# under it whose image runs as root (or as a non-numeric user it cannot
# check), and admission cannot see the image's USER. So: with
# policies.security_context.run_as_user set, the pod also gets that UID (and
# run_as_group, default the same number) and will start; unset (the default),
# runAsNonRoot is still defaulted and every container that would run as the
# image's own user gets an admission warning naming it and the fix. The pod
# is admitted either way: refusing it would stop every image that does run as
# a numeric non-root user.
configured_uid := uid if {
	uid := settings.run_as_user
	is_number(uid)
	uid > 0
}

configured_gid := gid if {
	gid := settings.run_as_group
	is_number(gid)
} else := configured_uid

defaults_run_as_non_root if {
	applies
	enabled("run_as_non_root")
	unset(pod_sc, ["runAsNonRoot"])
	not explicit_root
}

mutate contains {"op": "default", "path": at(["securityContext", "runAsNonRoot"]), "value": true} if defaults_run_as_non_root

# image_user_containers: the containers that would run as their image's
# user once runAsNonRoot: true is defaulted at pod level (no runAsUser of
# their own or from the pod, no runAsNonRoot of their own).
image_user_containers := [entry |
	some entry in defaulted
	unset(pod_sc, ["runAsUser"])
	unset(entry.container, ["securityContext", "runAsUser"])
	unset(entry.container, ["securityContext", "runAsNonRoot"])
]

mutate contains {"op": "default", "path": at(["securityContext", "runAsUser"]), "value": configured_uid} if {
	defaults_run_as_non_root
	count(image_user_containers) > 0
}

mutate contains {"op": "default", "path": at(["securityContext", "runAsGroup"]), "value": configured_gid} if {
	defaults_run_as_non_root
	count(image_user_containers) > 0
	configured_uid
	unset(pod_sc, ["runAsGroup"])
}

warn contains {"msg": msg} if {
	defaults_run_as_non_root
	not configured_uid
	some entry in image_user_containers
	msg := sprintf(
		"container %q (image %q) has no runAsUser and gets runAsNonRoot: true: the kubelet will refuse to start it if the image runs as root or as a non-numeric user; use an image whose USER is a numeric non-root UID, or set securityContext.runAsUser (cluster-wide: policies.security_context.run_as_user)",
		[entry.name, object.get(entry.container, "image", "")],
	)
}

# Legacy seccomp annotations (alpha, still validated by the API server
# against the fields: "seccomp type in annotation and field must match"):
# when the user chose seccomp that way for the pod or any container, the
# pod-level default stays off.
seccomp_pod_annotation := "seccomp.security.alpha.kubernetes.io/pod"

seccomp_container_annotation_prefix := "container.seccomp.security.alpha.kubernetes.io/"

seccomp_annotated if kubernetes.pod_annotations[seccomp_pod_annotation]

seccomp_annotated if {
	some key, _ in kubernetes.pod_annotations
	startswith(key, seccomp_container_annotation_prefix)
}

mutate contains {"op": "default", "path": at(["securityContext", "seccompProfile"]), "value": {"type": "RuntimeDefault"}} if {
	applies
	enabled("seccomp_profile")
	unset(pod_sc, ["seccompProfile"])
	not seccomp_annotated
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
