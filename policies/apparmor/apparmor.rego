# METADATA
# title: AppArmor profiles
# description: |
#   Containers run under the runtime's default AppArmor profile or a
#   Localhost profile from policies.apparmor.allowed_localhost_profiles;
#   Unconfined is denied. Both forms are checked: the beta annotations
#   container.apparmor.security.beta.kubernetes.io/<container> (values
#   runtime/default, localhost/<profile>, unconfined) and the
#   securityContext.appArmorProfile fields (pod and container level; types
#   RuntimeDefault, Localhost with localhostProfile, Unconfined). An
#   annotation naming no container of the pod is denied, and so is an
#   annotation that disagrees with the field in effect for its container
#   (the container's field, else the pod's), as the apiserver does for Pods.
#   With profile_required, every container must end up with an explicit
#   RuntimeDefault or allowed Localhost profile.
#   Reads: metadata.annotations, spec.securityContext.appArmorProfile and
#   spec.{initContainers,containers,ephemeralContainers}[*].securityContext
#   .appArmorProfile of Pods (also pods/ephemeralcontainers) and of the pod
#   templates of workloads.
#   Settings: policies.apparmor in config.yaml.
# custom:
#   settings:
#     allowed_localhost_profiles: array
#     profile_required: boolean
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
package portcullis.apparmor

import data.portcullis.lib.kubernetes

# Settings ---------------------------------------------------------------

# Read directly (kubernetes.policy_config reads the same): a rule reference
# is cheaper than a function call, and this runs on every request.
settings := s if {
	s := data.portcullis.config.policies.apparmor
} else := {}

# Localhost profile names (or globs) containers may use; defaults as in
# config.yaml.
allowed_localhost_profiles := object.get(settings, "allowed_localhost_profiles", [])

profile_required := object.get(settings, "profile_required", false)

annotation_prefix := "container.apparmor.security.beta.kubernetes.io/"

# Scope ------------------------------------------------------------------

# checked holds the containers this request can change: all of them, or
# only the ephemeral ones through pods/ephemeralcontainers (which cannot
# change annotations or pod-level fields).
checked := kubernetes.containers if {
	kubernetes.is_create_or_update
	kubernetes.subresource == ""
}

checked := [c | some c in kubernetes.containers; c.field == "ephemeralContainers"] if {
	kubernetes.is_create_or_update
	kubernetes.is_pod
	kubernetes.subresource == "ephemeralcontainers"
}

# pod_level is true when the request can change annotations and pod fields.
pod_level if {
	kubernetes.is_create_or_update
	kubernetes.subresource == ""
	kubernetes.pod
}

spec_path := "spec" if kubernetes.is_pod

spec_path := concat(".", array.concat(kubernetes.template_paths[kubernetes.kind], ["spec"]))

metadata_path := "metadata" if kubernetes.is_pod

metadata_path := concat(".", array.concat(kubernetes.template_paths[kubernetes.kind], ["metadata"]))

pod_field_path := sprintf("%s.securityContext.appArmorProfile", [spec_path])

container_field_path(c) := sprintf("%s.%s[%d].securityContext.appArmorProfile", [spec_path, c.field, c.index])

annotation_path(name) := sprintf("%s.annotations[%q]", [metadata_path, concat("", [annotation_prefix, name])])

# Profiles ---------------------------------------------------------------

# Profiles are compared in one form: {"type": ..., "localhostProfile": ...}
# as the field spells them; annotations are converted.
pod_profile := kubernetes.pod_spec.securityContext.appArmorProfile

container_profile(c) := c.container.securityContext.appArmorProfile

# container_names are the names of all the pod's containers (a rule, so it
# is built once, not once per annotation).
container_names := {c.name | some c in kubernetes.containers}

# annotations maps container name to the annotation's value.
annotations := {name: value |
	some key, value in kubernetes.pod_annotations
	startswith(key, annotation_prefix)
	name := substring(key, count(annotation_prefix), -1)
}

from_annotation("runtime/default") := {"type": "RuntimeDefault"}

from_annotation("unconfined") := {"type": "Unconfined"}

from_annotation(value) := {"type": "Localhost", "localhostProfile": substring(value, count("localhost/"), -1)} if {
	startswith(value, "localhost/")
	count(value) > count("localhost/")
}

# effective_field(c) is the field in effect for the container: its own,
# else the pod's (the order kubelet and the apiserver use).
effective_field(c) := container_profile(c)

effective_field(c) := pod_profile if not container_profile(c)

# problem(profile) says what is wrong with a profile; undefined when it is
# acceptable.
problem(profile) := "Unconfined is not allowed" if profile.type == "Unconfined"

problem(profile) := "type Localhost needs a localhostProfile" if {
	profile.type == "Localhost"
	object.get(profile, "localhostProfile", "") == ""
}

problem(profile) := sprintf("Localhost profile %q is not allowed (allowed: %s)", [name, _allowed_list]) if {
	profile.type == "Localhost"
	name := object.get(profile, "localhostProfile", "")
	name != ""
	not localhost_allowed(name)
}

problem(profile) := sprintf("unknown type %q (RuntimeDefault, Localhost or Unconfined)", [object.get(profile, "type", "")]) if {
	not object.get(profile, "type", "") in {"RuntimeDefault", "Localhost", "Unconfined"}
}

_allowed_list := kubernetes.quote(allowed_localhost_profiles) if count(allowed_localhost_profiles) > 0

_allowed_list := "none" if count(allowed_localhost_profiles) == 0

localhost_allowed(name) if {
	some p in allowed_localhost_profiles
	glob.match(p, [], name)
}

# same(annotation, field) mirrors the apiserver's check that the annotation
# and the field agree: the type, and for Localhost the profile name.
same(annotation, field) if {
	annotation.type == field.type
	field.type != "Localhost"
}

same(annotation, field) if {
	annotation.type == "Localhost"
	field.type == "Localhost"
	annotation.localhostProfile == object.get(field, "localhostProfile", "")
}

# Rules ------------------------------------------------------------------

deny contains {"msg": msg, "check": "pod_profile", "field": pod_field_path} if {
	pod_level
	why := problem(pod_profile)
	msg := sprintf("pod AppArmor profile: %s (%s)", [why, pod_field_path])
}

deny contains {"msg": msg, "check": "container_profile", "container": c.name, "field": field} if {
	some c in checked
	profile := c.container.securityContext.appArmorProfile # container_profile(c), inlined
	why := problem(profile)
	field := container_field_path(c)
	msg := sprintf("container %q AppArmor profile: %s (%s)", [c.name, why, field])
}

deny contains {"msg": msg, "check": "annotation_profile", "container": name, "field": field} if {
	pod_level
	some name, value in annotations
	why := _annotation_problem(value)
	field := annotation_path(name)
	msg := sprintf("container %q AppArmor annotation: %s (%s)", [name, why, field])
}

_annotation_problem(value) := problem(profile) if profile := from_annotation(value)

_annotation_problem(value) := sprintf("%q is not a valid profile (runtime/default, localhost/<profile> or unconfined)", [value]) if {
	not from_annotation(value)
}

deny contains {"msg": msg, "check": "annotation_container", "container": name, "field": field} if {
	pod_level
	some name, _ in annotations
	not name in container_names
	field := annotation_path(name)
	msg := sprintf("AppArmor annotation names container %q, which the pod does not have (%s)", [name, field])
}

deny contains {"msg": msg, "check": "annotation_mismatch", "container": c.name, "field": field} if {
	some c in checked
	value := annotations[c.name]
	annotation := from_annotation(value)
	field_profile := effective_field(c)
	not same(annotation, field_profile)
	field := annotation_path(c.name)
	msg := sprintf("container %q AppArmor annotation %q disagrees with %s (%s)", [
		c.name, value, _describe(field_profile), field,
	])
}

_describe(profile) := sprintf("type %s", [profile.type]) if profile.type != "Localhost"

_describe(profile) := sprintf("type Localhost with localhostProfile %q", [object.get(profile, "localhostProfile", "")]) if {
	profile.type == "Localhost"
}

_describe(profile) := "a field without a type" if not profile.type

deny contains {"msg": msg, "check": "profile_required", "container": c.name, "field": field} if {
	profile_required
	some c in checked
	not effective_field(c)
	not annotations[c.name]
	field := container_field_path(c)
	msg := sprintf("container %q has no AppArmor profile: set %s (or %s) to RuntimeDefault or an allowed Localhost profile", [
		c.name, field, pod_field_path,
	])
}
