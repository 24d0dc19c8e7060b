# METADATA
# title: Required labels
# description: |
#   Workloads and pods must carry the labels listed in
#   policies.required_labels.labels (app.kubernetes.io/name by default), so
#   every running thing can be traced back to what owns it.
#   Reads: metadata.labels of the object and of its pod template.
# custom:
#   kind: validating
#   enforcement: warn
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
package portcullis.required_labels

import data.portcullis.lib.kubernetes

settings := kubernetes.policy_config("required_labels")

required := object.get(settings, "labels", ["app.kubernetes.io/name"])

# Only new objects are checked; the pod's own labels cover Pods, templates'
# labels cover workloads (their pods inherit them).
deny contains {"msg": msg, "labels": missing} if {
	kubernetes.is_create_or_update
	kubernetes.subresource == ""
	labels := object.get(kubernetes.pod_metadata, "labels", {})
	missing := sort([l | some l in required; not labels[l]])
	count(missing) > 0
	msg := sprintf("%s %q is missing required %s %s", [
		kubernetes.kind,
		object.get(kubernetes.obj.metadata, "name", object.get(kubernetes.obj.metadata, "generateName", "")),
		kubernetes.pluralize("label", "labels", count(missing)),
		kubernetes.quote(missing),
	])
}
