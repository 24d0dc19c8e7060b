# METADATA
# title: Kubernetes helpers
# description: |
#   Shared helpers for Portcullis policies: where the pod spec lives in each
#   kind the policies cover, and how to walk its containers. Library packages
#   (portcullis.lib.*) are not policies: they expose no deny, warn or mutate.
package portcullis.lib.kubernetes

# The kinds whose objects carry a pod template, with the path from the object
# to the template (metadata + spec).
template_paths := {
	"Deployment": ["spec", "template"],
	"ReplicaSet": ["spec", "template"],
	"StatefulSet": ["spec", "template"],
	"DaemonSet": ["spec", "template"],
	"Job": ["spec", "template"],
	"ReplicationController": ["spec", "template"],
	"CronJob": ["spec", "jobTemplate", "spec", "template"],
	"PodTemplate": ["template"],
}

# Container lists in the order upstream Pod Security Admission walks them.
container_fields := ["initContainers", "containers", "ephemeralContainers"]

# The object under review (the new object; on DELETE there is none).
obj := input.request.object

# kind is the kind of the object under review.
kind := input.request.kind.kind

# is_pod is true when the request is for a Pod itself (any subresource).
is_pod if kind == "Pod"

# is_template is true when the object carries a pod template.
is_template if template_paths[kind]

# pod is {"metadata": ..., "spec": ...} of the pod, or of the pod template,
# the request describes. Undefined for kinds without a pod.
pod := {"metadata": object.get(obj, "metadata", {}), "spec": obj.spec} if {
	is_pod
	obj.spec
}

pod := {"metadata": object.get(template, "metadata", {}), "spec": template.spec} if {
	template := object.get(obj, template_paths[kind], null)
	template.spec
}

# pod_metadata is the pod's metadata ({} when absent).
pod_metadata := object.get(pod, "metadata", {})

# pod_annotations is the pod's annotations ({} when absent).
pod_annotations := object.get(pod_metadata, "annotations", {})

# pod_spec is the pod's spec.
pod_spec := pod.spec

# namespace of the request.
namespace := input.request.namespace

# containers is an array of every container of the pod, in upstream's order,
# each as {"field": "containers", "index": 0, "name": "app", "container": {...}}.
# An array, not a set, so the container objects are never hashed.
containers := [entry |
	some field in container_fields
	some i, c in object.get(pod_spec, field, [])
	entry := {"field": field, "index": i, "name": c.name, "container": c}
]

# subresource of the request ("" for the resource itself). The apiserver omits
# the field when empty, so never compare input.request.subResource directly.
subresource := object.get(input.request, "subResource", "")

# operation of the request (CREATE, UPDATE, DELETE, CONNECT).
operation := input.request.operation

# is_create_or_update is true for the operations that carry a new object.
is_create_or_update if operation in {"CREATE", "UPDATE"}

# policy_config returns the settings of a policy (config policies.<id>), {} when unset.
# (It must not read `data` as a whole: that would make every rule depend on
# every other.)
policy_config(id) := cfg if {
	cfg := data.portcullis.config.policies[id]
} else := {}

# namespace_matches is true when ns matches one of the patterns, each a
# namespace name or a glob ("team-*").
namespace_matches(ns, patterns) if {
	some p in patterns
	glob.match(p, [], ns)
}

# quote renders a list of names the way upstream PSA messages do:
# "a", "b".
quote(names) := concat(", ", [sprintf("%q", [n]) | some n in names])

# pluralize picks singular or plural by count.
pluralize(singular, _, n) := singular if n == 1

pluralize(_, plural, n) := plural if n != 1
